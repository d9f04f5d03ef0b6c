"""Mutation testing of the security-critical modules with cosmic-ray (outside the test suite).

Each module is mutated against only the few test files that cover it, so a run finishes in
reasonable time on two cores. The run happens in a scratch copy of the working tree (tracked and
untracked, not ignored files), never in the checkout itself: cosmic-ray edits the files it
mutates.

    pip install -e '.[mutation]'            # cosmic-ray
    python scripts/mutation.py              # every module below
    python scripts/mutation.py recording_format webhook_signing   # some of them
    python scripts/mutation.py --list

Prints, per module, mutants killed / survived / timed out and the survivors (operator, line);
exits 1 when the total kill rate is under ``--goal`` (default 90 %). docs/testing.md has the last
figures and why each survivor is harmless.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    module: str  # the file mutated
    tests: tuple[str, ...]  # pytest arguments that cover it (files, ::names, -k)
    timeout_s: float = 120.0


TARGETS: dict[str, Target] = {
    "recording_format": Target(
        "storage/recording_format.py",
        ("tests/security/test_crypto_invariants.py", "tests/storage/test_recording_store.py",
         "tests/security/test_fuzz_files.py::test_damaged_recordings_are_refused_and_never_decrypt_garbage"),
    ),
    "webhook_signing": Target(
        "crm_core/webhooks/signing.py",
        ("tests/security/test_crypto_invariants.py", "-k", "webhook"),
    ),
    "webhook_addresses": Target(
        "crm_core/webhooks/addresses.py",
        ("tests/security/test_webhook_urls.py", "-k", "not api and not delivery"),
    ),
    "webhook_urls": Target(
        "crm_core/webhooks/endpoints.py",
        ("tests/security/test_webhook_urls.py", "-k", "not api and not delivery"),
    ),
    "json_input": Target("crm_core/json_input.py", ("tests/security/test_hostile_json.py", "-k", "parse_json")),
    "auth_tokens": Target("crm_core/auth/tokens.py", ("tests/crm_core/api/test_auth.py",), 300),
    "auth_http": Target("crm_core/auth/http.py", ("tests/crm_core/api/test_auth.py",), 300),
    "auth_accounts": Target("crm_core/auth/accounts.py", ("tests/crm_core/api/test_auth.py",), 300),
    "auth_principal": Target(
        "crm_core/auth/principal.py",
        ("tests/security/test_token_scopes.py", "tests/crm_core/api/test_access.py",
         "tests/crm_core/api/test_auth.py"), 300,
    ),
    "passwords": Target("crm_core/auth/passwords.py", ("tests/crm_core/api/test_auth.py",), 300),
    "access": Target("crm_core/api/access.py", ("tests/crm_core/api/test_access.py",), 300),
    "records_tenant": Target(
        "crm_core/api/records.py",
        ("tests/crm_core/api/test_access.py", "tests/crm_core/api/test_leads.py"), 300,
    ),
    "privacy_tenant": Target(
        "crm_core/privacy.py",
        ("tests/security/test_tenant_statements.py", "tests/crm_core/api/test_privacy.py"), 300,
    ),
    "twilio_signatures": Target(
        "voice_server/transports/twilio_signature.py",
        ("tests/voice_server/transports/test_twilio_webhooks.py",
         "tests/security/test_carrier_webhook_input.py"), 300,
    ),
    "vonage_signatures": Target(
        "voice_server/transports/vonage_signature.py",
        ("tests/security/test_vonage_webhook_binding.py",
         "tests/voice_server/transports/test_vonage_webhooks.py"), 300,
    ),
    "stream_admissions": Target(
        "crm_core/calls/stream_admissions.py", ("tests/security/test_media_sockets.py",), 300,
    ),
    "redaction": Target("voice_server/redaction.py", ("tests/security/test_secrets_never_printed.py",), 300),
    "sip_source_limits": Target(
        "voice_server/sip/source_limits.py", ("tests/security/test_sip_reflection.py",), 300,
    ),
    "rate_limit": Target("storage/rate_limit.py", ("tests/storage/test_rate_limit.py",), 300),
    "sign_in_limits": Target(
        "crm_core/api/sign_in_limits.py", ("tests/crm_core/api/test_sign_in_limits.py",), 300,
    ),
}


def _copy_tree(dest: Path) -> None:
    """The working tree as git sees it (tracked + untracked, not ignored), and the venv link."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            check=True, capture_output=True).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = Path(raw.decode())
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _run_target(name: str, target: Target, work: Path, python: str) -> dict:
    basetemp = work / f"bt-{name}"
    tests = " ".join(f"'{t}'" for t in target.tests)
    # PYTHONPATH set explicitly: the tests import the mutated copy, not the checkout
    command = (f"env PYTHONPATH={work / 'tree'} {python} -m pytest -x -q -p no:cacheprovider "
               f"-p no:randomly --basetemp={basetemp} {tests}")
    config = work / f"{name}.toml"
    config.write_text(textwrap.dedent(f"""\
        [cosmic-ray]
        module-path = "{target.module}"
        timeout = {target.timeout_s}
        excluded-modules = []
        test-command = "{command}"

        [cosmic-ray.distributor]
        name = "local"
        """))
    session = work / f"{name}.sqlite"
    cosmic = [sys.executable, "-m", "cosmic_ray.cli"]
    tree = work / "tree"
    subprocess.run([*cosmic, "init", str(config), str(session)], cwd=tree, check=True)
    baseline = subprocess.run(command, shell=True, cwd=tree, capture_output=True, text=True, check=False)
    if baseline.returncode != 0:
        raise SystemExit(f"{name}: the tests fail before any mutation:\n{baseline.stdout[-2000:]}")
    subprocess.run([*cosmic, "exec", str(config), str(session)], cwd=tree, check=True)
    return _results(session)


def _results(session: Path) -> dict:
    db = sqlite3.connect(session)
    rows = db.execute(
        """SELECT m.operator_name, m.start_pos_row, m.occurrence, lower(r.test_outcome), r.worker_outcome
           FROM mutation_specs m JOIN work_results r ON r.job_id = m.job_id"""
    ).fetchall()
    killed = [r for r in rows if r[3] == "killed"]
    survived = [r for r in rows if r[3] == "survived"]
    other = [r for r in rows if r[3] not in ("killed", "survived")]
    return {"killed": len(killed), "survived": survived, "other": len(other), "total": len(rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"some of: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--list", action="store_true", help="print the module -> tests map and stop")
    parser.add_argument("--goal", type=float, default=90.0, help="minimum kill rate in percent")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the tests")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    if args.list:
        for name, target in TARGETS.items():
            print(f"{name:20} {target.module:40} {' '.join(target.tests)}")
        return 0
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; --list shows them")
    work = Path(tempfile.mkdtemp(prefix="coachline-mutation-"))
    (work / "tree").mkdir()
    _copy_tree(work / "tree")
    killed = total = 0
    try:
        for name in args.targets or list(TARGETS):
            result = _run_target(name, TARGETS[name], work, args.python)
            killed += result["killed"]
            total += result["total"]
            rate = 100.0 * result["killed"] / max(1, result["total"])
            print(f"\n{name}: {result['killed']}/{result['total']} killed ({rate:.1f} %), "
                  f"{len(result['survived'])} survived, {result['other']} incompetent/timed out")
            for operator, line, occurrence, *_ in result["survived"]:
                print(f"  survivor: {TARGETS[name].module}:{line} {operator} #{occurrence}")
    finally:
        if args.keep:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    rate = 100.0 * killed / max(1, total)
    print(f"\ntotal: {killed}/{total} killed ({rate:.1f} %), goal {args.goal:g} %")
    return 0 if rate >= args.goal else 1


if __name__ == "__main__":
    sys.exit(main())
