"""Deliveries have job slots of their own: with every generation slot held by a stalled generation
(WORKER_CONCURRENCY=1, search stalled), a completed article is still delivered at once, not after the held
generation lets go (which takes a lease heartbeat, about 20 s)."""
import time

from harness import run, tap
from webhooks_common import article, complete, integration, start, wait_article, wait_received


def main():
    env, stub = start({"WORKER_CONCURRENCY": "1"})
    user = env.signup("slots")
    integ = integration(user, stub.hook("slots"))

    # The first article's generation takes the only generation slot and stalls in research.
    first = user.create("An article whose research never ends", webhook_integration_id=integ).json["id"]
    held = wait_received_status(user, first, "researching", 10)
    tap.ok(held, "the first article holds the generation slot (researching)")

    # A second article, completed from outside, is delivered while that slot stays taken.
    second = user.create("An article completed elsewhere", webhook_integration_id=integ).json["id"]
    t0 = time.monotonic()
    complete(env, second, "# Done elsewhere\n\nbody")
    recs = wait_received(stub, "slots", 1, 8)
    took = time.monotonic() - t0
    tap.is_(len(recs), 1, "the completed article was delivered")
    tap.ok(took < 8, "without waiting for the held generation slot (%.1f s)" % took)
    # The sink has the request before the attempt's record commits: wait for it rather than race it.
    tap.is_(wait_article(user, second, lambda a: a["status"] == "posted", 5)["status"], "posted", "and is posted")
    tap.is_(article(user, first)["status"], "researching", "while the first is still generating")


def wait_received_status(user, aid, status, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if article(user, aid)["status"] == status:
            return True
        time.sleep(0.1)
    return False


run(main)
