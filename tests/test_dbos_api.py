"""The DBOS internals llmflow relies on (`llmflow.durable.dbos_api`) still exist and behave as
used: a DBOS upgrade that moves one fails here, not in a user's run."""

from __future__ import annotations

import inspect

from dbos import DBOS

from llmflow.durable import dbos_api


def test_the_internals_are_where_llmflow_takes_them() -> None:
    assert issubclass(dbos_api.UnexpectedStepError, Exception)
    assert inspect.isclass(dbos_api.Serializer)
    for method in ("serialize", "deserialize"):
        assert callable(getattr(dbos_api.Serializer, method, None)), method
    recover = DBOS._recover_pending_workflows
    assert list(inspect.signature(recover).parameters)[:1] == ["executor_ids"]


def test_outside_any_workflow() -> None:
    assert dbos_api.in_workflow() is False
    assert dbos_api.has_context() is False
