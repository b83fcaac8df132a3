"""What a production start of the API refuses: demo logins with their published passwords.

The settings (brokers, stores, databases, cookies, signing keys) are checked for every role by
`pumpwatch.production` before the event loop starts; this check needs the state database, so the
command line runs it right after the migration, still before any port is opened.
"""

from __future__ import annotations

from maintenance.accounts import DEMO_USERS, demo_password, may_be_estate_demo_login
from maintenance.auth import AuthService
from pumpwatch.production import role_problems
from pumpwatch.settings import Settings
from pumpwatch.site import Site


def demo_login_problems(auth: AuthService) -> list[str]:
    """The demo logins that still have their published passwords."""
    problems = []
    usernames = [username for username, _name, _roles in DEMO_USERS]
    # `pumpwatch demo --estates N` also made each estate's own demo people.
    usernames += [u.username for u in auth.list_users() if may_be_estate_demo_login(u.username)]
    for username in usernames:
        user = auth.get_by_username(username)
        if user is not None and auth.verify_password(user.password_hash, demo_password(username)):
            problems.append(f"user {username!r} still has its published demo password")
    return problems


def production_problems(settings: Settings, auth: AuthService, site: Site | None = None) -> list[str]:
    """Everything that makes this configuration unfit to serve the API in production (empty when fit)."""
    return demo_login_problems(auth) + role_problems(settings, "serve", site)
