"""gunicorn's worker hook (provisioning/gunicorn_conf.py): what a worker loaded is moved to
the garbage collector's permanent generation, so full collections stop walking it."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parent.parent / "provisioning" / "gunicorn_conf.py"


@pytest.fixture
def hook():
    pytest.importorskip("gunicorn")
    gc.unfreeze()
    yield runpy.run_path(str(CONFIG))["post_worker_init"]
    gc.unfreeze()


def tracked(obj) -> bool:
    """Whether ``obj`` is in one of the collector's generations (frozen objects are not)."""
    return any(candidate is obj for candidate in gc.get_objects())


def test_a_worker_freezes_what_it_loaded_and_still_collects_what_comes_after(hook):
    loaded = [{"a setting": "kept for the worker's life"}]
    assert tracked(loaded)

    hook(None)

    assert gc.get_freeze_count() > 0
    assert not tracked(loaded), "an object alive when the worker started is frozen"
    assert gc.isenabled()
    later = [{"a request's": "objects"}]
    assert tracked(later), "objects created afterwards are collected as before"


def test_the_hook_reads_the_urlconf_before_freezing(hook):
    """The URLconf (and every view module it imports) is read by the hook, not by the
    worker's first request, so that it is frozen with the rest."""
    from django.urls import clear_url_caches, get_resolver

    clear_url_caches()
    try:
        hook(None)
        resolver = get_resolver()
        assert "url_patterns" in resolver.__dict__, "the hook read the URLconf"
        assert not tracked(resolver.url_patterns)
    finally:
        clear_url_caches()
