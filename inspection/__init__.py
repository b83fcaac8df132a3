"""Maintenance plans, scheduler, duty rotation, checklists and reports."""
