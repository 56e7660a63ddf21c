"""Failure notifications through Prefect's own mechanisms: a notification block and an automation.

The automation reacts to the events Prefect server emits when a flow run enters a failed
terminal state (:data:`FAILURE_EVENTS`):

- ``prefect.flow-run.Failed``: the flow raised, or a task failure failed it (a quality-gate
  failure ends here too);
- ``prefect.flow-run.Crashed``: the run's process or infrastructure died (killed worker, OOM,
  interrupted run);
- ``prefect.flow-run.TimedOut``: the flow exceeded its ``timeout_seconds``.

Its action sends the notification block ``lakehouse-failures``: a Slack webhook if
``LAKEHOUSE_ALERT_SLACK_WEBHOOK_URL`` is set, else a generic JSON webhook from
``LAKEHOUSE_ALERT_WEBHOOK_URL``. Both are created or updated in place, so running this again is
safe. It talks to the server of ``PREFECT_API_URL`` (or Prefect Cloud when logged in)::

    set -a; . ./.env; set +a
    LAKEHOUSE_ALERT_SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... python -m infra.notifications
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, SendNotification
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from pydantic import SecretStr

LOG = logging.getLogger(__name__)

FAILURE_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut")
BLOCK_NAME = "lakehouse-failures"
AUTOMATION_NAME = "lakehouse-flow-run-failures"
SLACK_WEBHOOK_ENV = "LAKEHOUSE_ALERT_SLACK_WEBHOOK_URL"
WEBHOOK_ENV = "LAKEHOUSE_ALERT_WEBHOOK_URL"

SUBJECT = "Prefect flow run {{ flow.name }}/{{ flow_run.name }}: {{ flow_run.state.name }}"
BODY = """Flow run {{ flow.name }}/{{ flow_run.name }} entered {{ flow_run.state.name }} \
at {{ flow_run.state.timestamp }}.
Parameters: {{ flow_run.parameters }}
State message: {{ flow_run.state.message }}
Flow run ID: {{ flow_run.id }}
Flow run URL: {{ flow_run|ui_url }}"""


class NotificationConfigError(ValueError):
    """No notification channel is configured (neither Slack nor webhook URL)."""


@dataclass(frozen=True)
class NotificationSettings:
    """Where failure notifications go. Webhook URLs carry tokens: they are never logged."""

    slack_webhook_url: str | None = field(default=None, repr=False)
    webhook_url: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotificationSettings:
        """Read ``LAKEHOUSE_ALERT_SLACK_WEBHOOK_URL`` and ``LAKEHOUSE_ALERT_WEBHOOK_URL``."""
        env = os.environ if environ is None else environ
        return cls(
            slack_webhook_url=env.get(SLACK_WEBHOOK_ENV) or None,
            webhook_url=env.get(WEBHOOK_ENV) or None,
        )


def notification_block(settings: NotificationSettings) -> NotificationBlock:
    """The block that delivers notifications: Slack if configured, else the generic webhook.

    Raises:
        NotificationConfigError: if neither URL is set.
    """
    if settings.slack_webhook_url:
        return SlackWebhook(url=SecretStr(settings.slack_webhook_url))
    if settings.webhook_url:
        return CustomWebhookNotificationBlock(
            name=BLOCK_NAME,
            url=settings.webhook_url,
            json_data={"subject": "{{subject}}", "body": "{{body}}", "text": "{{subject}}\n{{body}}"},
        )
    raise NotificationConfigError(
        f"set {SLACK_WEBHOOK_ENV} or {WEBHOOK_ENV} to receive failure notifications"
    )


def failure_automation(block_document_id: UUID, *, name: str = AUTOMATION_NAME) -> Automation:
    """An automation sending ``block_document_id`` on every failed, crashed or timed-out flow run."""
    return Automation(
        name=name,
        description="Notify when a flow run fails, crashes or times out (created by infra.notifications).",
        enabled=True,
        trigger=EventTrigger(
            expect=set(FAILURE_EVENTS),
            match={"prefect.resource.id": "prefect.flow-run.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[SendNotification(block_document_id=block_document_id, subject=SUBJECT, body=BODY)],
    )


def ensure_failure_notifications(
    settings: NotificationSettings, *, block_name: str = BLOCK_NAME, automation_name: str = AUTOMATION_NAME
) -> UUID:
    """Create or update the notification block and the failure automation; return the automation id.

    Uses the Prefect API of the current settings (``PREFECT_API_URL``). Call it from synchronous
    code; async callers use :func:`aensure_failure_notifications`.

    Raises:
        NotificationConfigError: if no channel is configured.
        prefect.exceptions.PrefectHTTPStatusError: if the server rejects a request.
    """
    return asyncio.run(
        aensure_failure_notifications(settings, block_name=block_name, automation_name=automation_name)
    )


async def aensure_failure_notifications(
    settings: NotificationSettings, *, block_name: str = BLOCK_NAME, automation_name: str = AUTOMATION_NAME
) -> UUID:
    """Async form of :func:`ensure_failure_notifications`."""
    block = notification_block(settings)
    block_id = await block.asave(block_name, overwrite=True)
    LOG.info("saved notification block %s (%s)", block_name, type(block).__name__)
    wanted = failure_automation(block_id, name=automation_name)
    try:
        existing = await Automation.aread(name=automation_name)
    except ValueError:  # Automation.aread's "not found"
        created = await wanted.acreate()
        if created.id is None:
            raise RuntimeError(f"Prefect returned no id for automation {automation_name}") from None
        LOG.info("created automation %s on %s", automation_name, ", ".join(FAILURE_EVENTS))
        return created.id
    existing.description = wanted.description
    existing.enabled = True
    existing.trigger = wanted.trigger
    existing.actions = wanted.actions
    await existing.aupdate()
    if existing.id is None:
        raise RuntimeError(f"Prefect returned no id for automation {automation_name}")
    LOG.info("updated automation %s on %s", automation_name, ", ".join(FAILURE_EVENTS))
    return existing.id


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m infra.notifications``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m infra.notifications",
        description="Create or update the Prefect automation that notifies on failed flow runs.",
    )
    parser.add_argument("--block-name", default=BLOCK_NAME)
    parser.add_argument("--automation-name", default=AUTOMATION_NAME)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per API request
    try:
        ensure_failure_notifications(
            NotificationSettings.from_env(), block_name=args.block_name, automation_name=args.automation_name
        )
    except NotificationConfigError as exc:
        LOG.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
