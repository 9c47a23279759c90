"""The Jupyter kernel the notebooks run in when `reproduce` executes them.

What it is:
    KERNEL_NAME / ensure_kernel   a kernel spec for *this* interpreter (papermill needs a named kernel; CI has none)
    one_kernel                    one kernel started for every notebook of a run (`reproduce(shared_kernel=True)`),
                                  or None, when papermill starts a fresh one per notebook (the default)
    reset_kernel                  what a shared kernel runs before each notebook, so that it starts as a fresh one

What it is not: executing notebooks, their summary or their HTML (entmask.notebook_run).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from entmask import runs

KERNEL_NAME = "entmask-python"


def ensure_kernel(name: str = KERNEL_NAME, base: str | Path | None = None) -> Path:
    """Write a kernel spec `name` that runs *this* interpreter (sys.executable) and return the Jupyter data folder
    holding it (put it on $JUPYTER_PATH to use it). The folder is keyed by the interpreter's path, so two venvs
    never share one; the spec is rewritten when stale. Needs only ipykernel in this environment."""
    tag = hashlib.sha256(sys.executable.encode()).hexdigest()[:10]
    data = Path(base or tempfile.gettempdir()) / f"entmask-jupyter-{tag}"
    spec = data / "kernels" / name / "kernel.json"
    want = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python (entmask, {Path(sys.executable).parent.parent.name})", "language": "python",
            "metadata": {"debugger": True}, "env": {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}}
    try:
        current = json.loads(spec.read_text()) if spec.exists() else None
    except json.JSONDecodeError:
        current = None
    if current != want:
        runs.atomic_write_text(spec, json.dumps(want, indent=1) + "\n")
    return data


def _shared_manager(name: str):
    """A started-later KernelManager for `name` whose clients are asynchronous and remembered.

    Asynchronous: nbclient awaits its client's messages; a blocking client (what a plain KernelManager hands out)
    would hold nbclient's event loop in a poll without timeout, so neither `reproduce(timeout=...)` nor a dead kernel
    would ever be noticed. Remembered: with a caller's kernel nbclient leaves the client it opened for a notebook
    open (sockets and a heartbeat thread); `close_clients()` closes them after each notebook."""
    from jupyter_client.manager import KernelManager

    class SharedKernelManager(KernelManager):
        def client(self, **kwargs):
            kc = super().client(**kwargs)
            self.opened.append(kc)
            return kc

        def close_clients(self) -> None:
            while self.opened:
                with contextlib.suppress(Exception):
                    self.opened.pop().stop_channels()

    km = SharedKernelManager(kernel_name=name, client_class="jupyter_client.asynchronous.AsyncKernelClient")
    km.opened = []
    return km


@contextlib.contextmanager
def one_kernel(enabled: bool, cwd: str | Path, name: str = KERNEL_NAME) -> Iterator[object]:
    """One kernel for every notebook of a run (its KernelManager, for papermill's `km=`; call its close_clients()
    after each notebook), else None (papermill starts one per notebook). Start it inside the run's environment
    (JUPYTER_PATH finds the spec, the variables reach the kernel); `cwd` is its working directory. Shut down however
    the run ends."""
    if not enabled:
        yield None
        return
    km = _shared_manager(name)
    km.start_kernel(cwd=str(cwd))
    try:
        yield km
    finally:
        km.close_clients()
        with contextlib.suppress(Exception):  # a kernel already dead (killed, crashed) has nothing to shut down
            km.shutdown_kernel(now=True)


# Run in a shared kernel before each notebook: close the previous one's figures, then forget every name it defined
# (modules stay imported) and restart the execution count, so the next notebook starts as in a fresh kernel. The
# module attributes of the namespace that IPython's reset drops (__spec__, __loader__, ...) are put back:
# multiprocessing's spawn reads __main__.__spec__, and without it every experiment that splits its rows between
# processes failed (make reproduce's 01, session 30). Only these: a notebook's own dunders (__all__) and IPython's
# output history (__, ___) must not reach the next notebook. A lambda, since the reset empties the cell's own
# globals while it runs.
_MODULE_DUNDERS = ("__spec__", "__loader__", "__package__", "__file__")
_RESET = ("import sys as _s\n"
          "_p = _s.modules.get('matplotlib.pyplot')\n"
          "_p is not None and _p.close('all')\n"
          "(lambda ns, keep: (get_ipython().reset(new_session=True), [ns.setdefault(k, v) for k, v in keep.items()]))"
          f"(get_ipython().user_ns, {{k: v for k, v in get_ipython().user_ns.items() if k in {_MODULE_DUNDERS!r}}})\n"
          "None")


def reset_kernel(km, timeout: int = 120) -> None:
    """Reset the kernel of `km` as _RESET says; RuntimeError (one line) when the kernel reports an error."""
    from jupyter_client.blocking import BlockingKernelClient

    kc = BlockingKernelClient(**km.get_connection_info(session=True))  # a blocking one of its own, used and closed
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        reply = kc.execute_interactive(_RESET, store_history=False, timeout=timeout, output_hook=lambda msg: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"resetting the shared kernel failed: {reply['content'].get('evalue', '')}")
    finally:
        kc.stop_channels()


__all__ = ["KERNEL_NAME", "ensure_kernel", "one_kernel", "reset_kernel"]
