"""Generated requests from /openapi.json never get a 500 (schemathesis, against a live server).

Schemathesis' own pytest plugin does not run on pytest 9 here, so the test walks
the operations itself and drives each one's hypothesis strategy.
"""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from engramdb import MemoryEngine  # noqa: E402

from .conftest import running  # noqa: E402

EXAMPLES = 6


@pytest.mark.slow
def test_no_server_error_on_generated_input(tmp_path: Any) -> None:
    failures: list[str] = []
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
                    response = case.call(base_url=live.url, timeout=20)
                    if response.status_code >= 500:
                        failures.append(
                            f"{case.method} {case.formatted_path} {case.body!r:.200} -> "
                            f"{response.status_code} {response.text[:300]}"
                        )
                    elif response.status_code >= 400 and "error" not in response.json():
                        failures.append(f"{case.method} {case.formatted_path}: not the error shape")

                check()
    assert failures == []
