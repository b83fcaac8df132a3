"""Maintenance state: tasks, alarms, approvals, people, audit, reports, calendar and notifications.

Importable by the API and the scheduler without HTTP. Every table registers on the shared metadata
when the package loads, so migrations compare against all of them.
"""

from maintenance import approval_models as approval_models
from maintenance import exception_models as exception_models
from maintenance import handover_models as handover_models
from maintenance import report_models as report_models
from maintenance import signin_models as signin_models
