"""Generated requests from /openapi.json (schemathesis, against a live server).

No 500, and every answer matches the schema: a documented status, its content
type, and its body (errors included, in their one shape). Schemathesis' own
pytest plugin does not run on pytest 9 here, so the test walks the operations
itself and drives each one's hypothesis strategy.
"""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from engramdb import MemoryEngine  # noqa: E402

from .conftest import running  # noqa: E402

EXAMPLES = 6
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.mark.slow
def test_no_server_error_on_generated_input(tmp_path: Any) -> None:
    with MemoryEngine.open(tmp_path / "store", embedder="hashing") as engine:
        engine.add_many([f"seed memory {i}" for i in range(5)], agent="bot")
        with running(engine) as live:
            schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
            operations = [r.ok() for r in schema.get_all_operations()]
            # an event stream never ends by itself; test_events.py covers it
            operations = [op for op in operations if not op.path.endswith("/events")]
            assert len(operations) >= 15

            for op in operations:

                @given(case=op.as_strategy())
                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def check(case: Any) -> None:
                    case.call_and_validate(base_url=live.url, timeout=20, checks=CHECKS)

                check()
