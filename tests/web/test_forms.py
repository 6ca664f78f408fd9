"""Submitted forms become typed API arguments the way each action declares its fields."""

from __future__ import annotations

from starlette.datastructures import FormData

from prism_mcp.web.catalog import ACTIONS
from prism_mcp.web.forms import action_arguments


def test_settings_form_sends_ticked_and_unticked_boxes_as_booleans_and_keeps_blank_fields_unchanged() -> None:
    form = FormData(
        [
            ("csrf", "t"),
            ("bools", "slack_enabled email_enabled daily_reports"),
            ("slack_enabled", "on"),
            ("slack_webhook_url", ""),
            ("email_recipients", "a@example.com, b@example.com"),
            ("repeat_interval_seconds", "3600"),
            ("min_severity", "critical"),
        ]
    )
    arguments = action_arguments(ACTIONS["notifications_update_settings"], form)
    assert arguments == {
        "slack_enabled": True,
        "email_enabled": False,
        "daily_reports": False,
        "email_recipients": ["a@example.com", "b@example.com"],
        "repeat_interval_seconds": 3600,
        "min_severity": "critical",
    }


def test_row_action_ids_become_a_list_and_plumbing_fields_are_dropped() -> None:
    form = FormData([("csrf", "t"), ("confirmed", "yes"), ("ids", "dl-1")])
    assert action_arguments(ACTIONS["notifications_retry"], form) == {"ids": ["dl-1"]}


def test_a_number_field_that_is_not_a_number_is_passed_on_for_the_api_to_refuse() -> None:
    form = FormData([("days_old", "seven")])
    assert action_arguments(ACTIONS["logs_cleanup"], form) == {"days_old": "seven"}
