"""The benchmark app (loadsynthetic, runbench) is installed only with SCIMGATE_BENCHMARK on."""

import os
import subprocess
import sys

from django.conf import settings

MANAGE = settings.BASE_DIR / "manage.py"


def _help(command: str, **switch: str) -> subprocess.CompletedProcess:
    # The project's own settings, not the test suite's (which switch the app on).
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "SCIMGATE_BENCHMARK"}}
    return subprocess.run(
        [sys.executable, str(MANAGE), "help", command],
        env={**env, **switch},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_runbench_exists_only_with_the_switch():
    without = _help("runbench")
    assert without.returncode != 0
    assert "Unknown command: 'runbench'" in without.stderr

    with_switch = _help("runbench", SCIMGATE_BENCHMARK="true")
    assert with_switch.returncode == 0, with_switch.stderr
    assert "usage: manage.py runbench" in with_switch.stdout


def test_the_suite_runs_with_the_app_installed():
    assert "provisioning.benchmark" in settings.INSTALLED_APPS
