"""The machine a figure was measured on, how busy other processes kept it, and the note a figure
taken on a busy machine carries."""

import os
import subprocess
import sys
import time

from seglab.engine.machine import (
    busy_note,
    cpu_load,
    describe_machine,
    machine_description,
    usable_cores,
)


def test_other_processes_busy_on_the_cores_are_measured():
    spinners = min(usable_cores(), 4)  # one per core this process may use (an xdist worker's)
    spin = "import time\nend = time.time() + 3\nwhile time.time() < end: pass"
    children = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(spinners)]
    try:
        time.sleep(0.5)  # started and spinning
        load = cpu_load(0.5)
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert load["others_busy"] >= 0.5 * spinners / (os.cpu_count() or 1)
    assert load["load_average"] is not None


def test_a_busy_machine_is_said_in_its_description_and_note():
    machine = machine_description()
    assert set(machine["load"]) == {"others_busy", "load_average"}
    quiet = {**machine, "load": {"others_busy": 0.05, "load_average": 0.3}}
    busy = {**machine, "cores": 2, "load": {"others_busy": 0.62, "load_average": 2.5}}
    assert busy_note(quiet) is None and busy_note({"cores": 2}) is None  # an older record
    assert busy_note(busy).startswith("the machine was busy: other processes used 62% of its 2")
    assert describe_machine(quiet).endswith("other processes' CPU use 5%")
    assert describe_machine(busy).endswith("other processes' CPU use 62% (busy)")
