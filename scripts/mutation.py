"""Mutation testing of the security-critical modules with cosmic-ray (outside the test suite).

Each module is mutated against only the few test files that cover it, so a run finishes in
reasonable time on two cores. The run happens in a scratch copy of the working tree (tracked and
untracked, not ignored files), never in the checkout itself: cosmic-ray edits the files it
mutates.

    pip install -e '.[mutation]'            # cosmic-ray
    python scripts/mutation.py              # every module below
    python scripts/mutation.py recording_format webhook_signing   # some of them
    python scripts/mutation.py --list
    python scripts/mutation.py --sample 60 access   # a fixed random sample of 60 mutants

Prints, per module, mutants killed / survived / timed out and each survivor with its diff, then
one last line ``mutation-summary {json}`` (per module and total), and exits 1 when the total
kill rate is under ``--goal`` (default 90 %). docs/testing.md has the last figures and why each
survivor is harmless.

Some mutants are not run, and are counted apart ("skipped"), never as killed: those inside
annotations of a module with ``from __future__ import annotations`` (never evaluated, so
equivalent by construction: ``str | None`` -> ``str - None``), those that are not Python
(``def f(a, *, b)`` -> ``def f(a, &, b)``, which would "fail" at import), and those outside the
selection (``--sample N``: a fixed random sample per module; ``--only``: named mutants, e.g. an
earlier run's survivors after tests were added). The kill rate is over the mutants run.

cosmic-ray need not be in the project's environment: with it installed elsewhere
(``pip install --target DIR cosmic-ray``), run ``PYTHONPATH=DIR python scripts/mutation.py``;
the tests always run with PYTHONPATH set to the scratch tree alone, so DIR's packages never
shadow the environment's in them.
"""

from __future__ import annotations

import argparse
import ast
import compileall
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    module: str  # the file mutated
    tests: tuple[str, ...]  # pytest arguments that cover it (files, ::names, -k)
    timeout_s: float = 120.0  # at most; a run's timeout is a few times its baseline


TARGETS: dict[str, Target] = {
    "recording_format": Target(
        "storage/recording_format.py",
        (
            "tests/security/test_crypto_invariants.py",
            "tests/storage/test_recording_store.py",
            "tests/security/test_fuzz_files.py::test_damaged_recordings_are_refused_and_never_decrypt_garbage",
        ),
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
    "json_input": Target(
        "crm_core/json_input.py", ("tests/security/test_hostile_json.py", "-k", "parse_json")
    ),
    "auth_tokens": Target("crm_core/auth/tokens.py", ("tests/crm_core/api/test_auth.py",), 300),
    "auth_http": Target("crm_core/auth/http.py", ("tests/crm_core/api/test_auth.py",), 300),
    "auth_accounts": Target("crm_core/auth/accounts.py", ("tests/crm_core/api/test_auth.py",), 300),
    "auth_principal": Target(
        "crm_core/auth/principal.py",
        ("tests/security/test_principal_rules.py", "tests/security/test_token_scopes.py"),
        300,
    ),
    "passwords": Target("crm_core/auth/passwords.py", ("tests/crm_core/api/test_auth.py",), 300),
    "access": Target(
        "crm_core/api/access.py",
        (
            "tests/crm_core/api/test_access.py",
            "-k",
            "access_matrix or assigning or organizations_never or territory",
        ),
        300,
    ),
    "records_tenant": Target(
        "crm_core/api/records.py",
        ("tests/crm_core/api/test_access.py", "tests/crm_core/api/test_leads.py"),
        300,
    ),
    "privacy_tenant": Target(
        "crm_core/privacy.py",
        ("tests/security/test_tenant_statements.py", "tests/crm_core/api/test_privacy.py"),
        300,
    ),
    "twilio_signatures": Target(
        "voice_server/transports/twilio_signature.py",
        (
            "tests/voice_server/transports/test_twilio_webhooks.py",
            "tests/security/test_carrier_webhook_input.py",
            "-k",
            "signed_inbound or forged or json_bodies or twilio_forms",
        ),
        300,
    ),
    "vonage_signatures": Target(
        "voice_server/transports/vonage_signature.py",
        (
            "tests/security/test_vonage_token_rules.py",
            "tests/security/test_vonage_webhook_binding.py",
            "tests/voice_server/transports/test_vonage_webhooks.py",
        ),
        300,
    ),
    "stream_admissions": Target(
        "crm_core/calls/stream_admissions.py",
        ("tests/security/test_media_sockets.py",),
        300,
    ),
    "redaction": Target(
        "voice_server/redaction.py",
        ("tests/security/test_redaction_rules.py", "tests/security/test_secrets_never_printed.py"),
        300,
    ),
    "sip_source_limits": Target(
        "voice_server/sip/source_limits.py",
        (
            "tests/security/test_sip_reflection.py",
            "tests/security/test_source_budget.py",
            "-k",
            "source_budget",
        ),
        300,
    ),
    "rate_limit": Target("storage/rate_limit.py", ("tests/storage/test_rate_limit.py",), 300),
    "sign_in_limits": Target(
        "crm_core/api/sign_in_limits.py",
        ("tests/crm_core/api/test_sign_in_limits.py",),
        300,
    ),
}


# Plugins none of the mapped tests need, whose import is most of a short test run's start-up
# (hypothesis itself still works without its pytest plugin).
_UNUSED_PLUGINS = "-p no:schemathesis -p no:playwright -p no:hypothesispytest"


def _copy_tree(dest: Path) -> None:
    """The working tree as git sees it (tracked + untracked, not ignored), compiled.

    cosmic-ray runs the tests with PYTHONDONTWRITEBYTECODE, so without compiled files every
    mutant's test run would compile the whole project again. Hash-checked ones are rebuilt
    in memory for the one mutated file and trusted for the rest."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = Path(raw.decode())
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    compileall.compile_dir(
        dest,
        quiet=1,
        workers=1,
        invalidation_mode=compileall.py_compile.PycInvalidationMode.CHECKED_HASH,
    )


def _annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions of every annotation when the module postpones their evaluation."""
    tree = ast.parse(source)
    postponed = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )
    if not postponed:
        return []
    spans = []
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            annotations.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            annotations.append(node.returns)
        spans += [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in annotations]
    return spans


def _does_not_compile(module: Path, rows: list[tuple]) -> list[str]:
    """Jobs whose mutant is not Python (``def f(a, *, b)`` -> ``def f(a, &, b)``): they would
    fail at import and count as killed without testing anything. Mutants cosmic-ray cannot build
    at all are counted with them."""
    # imported here: only this process needs cosmic-ray, never the tests
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator

    source = module.read_text()
    broken = []
    for job, operator_name, operator_args, occurrence in rows:
        args = json.loads(operator_args or "{}")
        args = json.loads(args) if isinstance(args, str) else args  # stored JSON-encoded twice
        operator = get_operator(operator_name)(**args)
        try:
            mutated = mutate_code(source, operator, occurrence)
        except Exception:  # noqa: BLE001 (a cosmic-ray operator that cannot build this mutant,
            broken.append(job)  # e.g. ExceptionReplacer on a dotted name: it would crash too)
            continue
        try:
            with warnings.catch_warnings():  # `x is "literal"` mutants warn; they do compile
                warnings.simplefilter("ignore", SyntaxWarning)
                compile(mutated or source, str(module), "exec")
        except SyntaxError:
            broken.append(job)
    return broken


def _skip(
    session: Path, module: Path, sample: int | None, seed: str, only: set[str] | None = None
) -> dict[str, int]:
    """Mark the mutants not to run as skipped: those in annotations, those that do not compile,
    those outside the sample or the ``--only`` list."""
    spans = _annotation_spans(module.read_text())
    db = sqlite3.connect(session)
    rows = db.execute(
        "SELECT job_id, start_pos_row, start_pos_col, end_pos_row, end_pos_col, operator_name,"
        " operator_args, occurrence FROM mutation_specs ORDER BY job_id"
    ).fetchall()
    in_annotation = {
        row[0]
        for row in rows
        if any(start <= (row[1], row[2]) and (row[3], row[4]) <= end for start, end in spans)
    }
    candidates = sorted(row[0] for row in rows if row[0] not in in_annotation)
    by_job = {r[0]: r for r in rows}
    if only is not None:
        wanted = [
            j
            for j in candidates
            if f"{by_job[j][1]}:{by_job[j][5].split('/')[-1]}#{by_job[j][7]}" in only
        ]
    elif sample is not None:
        wanted = random.Random(seed).sample(candidates, len(candidates))
    else:
        wanted = candidates
    # A sample is of mutants that compile: checked in the sample's order until it is full
    # (checking every mutant of a large module costs minutes).
    broken: set[str] = set()
    chosen: list[str] = []
    for job in wanted:
        if sample is not None and only is None and len(chosen) >= sample:
            break
        if _does_not_compile(module, [(job, *by_job[job][5:])]):
            broken.add(job)
        else:
            chosen.append(job)
    picked = set(chosen)
    unsampled = [job for job in candidates if job not in broken and job not in picked]
    skipped = {"annotation": in_annotation, "does not compile": broken, "not selected": unsampled}
    for reason, jobs in skipped.items():
        db.executemany(
            "INSERT INTO work_results (job_id, worker_outcome, output) VALUES (?, 'SKIPPED', ?)",
            [(job, reason) for job in sorted(jobs)],
        )
    db.commit()
    db.close()
    return {reason: len(jobs) for reason, jobs in skipped.items()}


def _run_target(
    name: str, target: Target, work: Path, python: str, sample: int | None, only: set[str] | None
) -> dict:
    basetemp = work / f"bt-{name}"
    tests = " ".join(f"'{t}'" for t in target.tests)
    # PYTHONPATH set explicitly (env replaces the caller's): the tests import the mutated copy,
    # never the checkout nor wherever cosmic-ray itself was installed
    command = (
        f"env PYTHONPATH={work / 'tree'} {python} -m pytest -x -q -p no:cacheprovider "
        f"-p no:randomly {_UNUSED_PLUGINS} --basetemp={basetemp} {tests}"
    )
    tree = work / "tree"
    started = time.monotonic()
    baseline = subprocess.run(
        command, shell=True, cwd=tree, capture_output=True, text=True, check=False
    )
    baseline_s = time.monotonic() - started
    if baseline.returncode != 0:
        raise SystemExit(f"{name}: the tests fail before any mutation:\n{baseline.stdout[-2000:]}")
    # a mutant that loops forever counts as killed when it times out; waiting the full
    # ceiling for each would dominate the run
    timeout = min(target.timeout_s, max(20.0, 4 * baseline_s))
    config = work / f"{name}.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [cosmic-ray]
        module-path = "{target.module}"
        timeout = {timeout:.0f}
        excluded-modules = []
        test-command = "{command}"

        [cosmic-ray.distributor]
        name = "local"
        """)
    )
    session = work / f"{name}.sqlite"
    cosmic = [sys.executable, "-m", "cosmic_ray.cli"]
    subprocess.run([*cosmic, "init", str(config), str(session)], cwd=tree, check=True)
    skipped = _skip(session, tree / target.module, sample, seed=name, only=only)
    subprocess.run([*cosmic, "exec", str(config), str(session)], cwd=tree, check=True)
    result = _results(session)
    result.update(
        skipped=skipped, baseline_s=round(baseline_s, 1), seconds=round(time.monotonic() - started)
    )
    return result


def _results(session: Path) -> dict:
    db = sqlite3.connect(session)
    rows = db.execute(
        """SELECT m.operator_name, m.start_pos_row, m.occurrence, lower(r.test_outcome),
                  lower(r.worker_outcome), r.output, r.diff
           FROM mutation_specs m JOIN work_results r ON r.job_id = m.job_id
           ORDER BY m.start_pos_row, m.operator_name, m.occurrence"""
    ).fetchall()
    db.close()
    ran = [r for r in rows if r[4] != "skipped"]
    killed = [r for r in ran if r[3] == "killed"]
    survived = [r for r in ran if r[3] == "survived"]
    timed_out = [r for r in killed if r[5] == "timeout"]
    return {
        "killed": len(killed),
        "survived": [
            {"operator": r[0].split("/")[-1], "line": r[1], "occurrence": r[2], "diff": r[6]}
            for r in survived
        ],
        "timed_out": len(timed_out),
        "other": len(ran) - len(killed) - len(survived),
        "total": len(killed) + len(survived),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"some of: {', '.join(TARGETS)} (default: all)")
    parser.add_argument(
        "--list", action="store_true", help="print the module -> tests map and stop"
    )
    parser.add_argument("--goal", type=float, default=90.0, help="minimum kill rate in percent")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the tests")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="run a fixed random sample of N mutants per module (seeded by its name)",
    )
    parser.add_argument(
        "--only",
        metavar="IDS",
        help="run only these mutants, as the summary names survivors (LINE:OPERATOR#N,...): "
        "to check that new tests kill an earlier run's survivors",
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, target in TARGETS.items():
            print(f"{name:20} {target.module:40} {' '.join(target.tests)}")
        return 0
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; --list shows them")
    only = set(args.only.split(",")) if args.only else None
    work = Path(tempfile.mkdtemp(prefix="coachline-mutation-"))
    (work / "tree").mkdir()
    _copy_tree(work / "tree")
    killed = total = 0
    summary: dict[str, dict] = {}
    try:
        for name in args.targets or list(TARGETS):
            result = _run_target(name, TARGETS[name], work, args.python, args.sample, only)
            killed += result["killed"]
            total += result["total"]
            rate = 100.0 * result["killed"] / max(1, result["total"])
            skipped = ", ".join(f"{n} {why}" for why, n in result["skipped"].items() if n)
            print(
                f"\n{name}: {result['killed']}/{result['total']} killed ({rate:.1f} %; "
                f"{result['timed_out']} by timeout), {len(result['survived'])} survived, "
                f"{result['other']} incompetent; skipped: {skipped or 'none'}; "
                f"{result['seconds']} s",
                flush=True,
            )
            for survivor in result["survived"]:
                print(
                    f"  survivor: {TARGETS[name].module}:{survivor['line']} "
                    f"{survivor['operator']} #{survivor['occurrence']}"
                )
                print(textwrap.indent((survivor["diff"] or "").strip(), "    "), flush=True)
            summary[name] = {
                "module": TARGETS[name].module,
                "killed": result["killed"],
                "total": result["total"],
                "timed_out": result["timed_out"],
                "incompetent": result["other"],
                "skipped": result["skipped"],
                "seconds": result["seconds"],
                "survivors": [
                    f"{s['line']}:{s['operator']}#{s['occurrence']}" for s in result["survived"]
                ],
            }
    finally:
        if args.keep:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    rate = 100.0 * killed / max(1, total)
    print(f"\ntotal: {killed}/{total} killed ({rate:.1f} %), goal {args.goal:g} %")
    print(
        "mutation-summary "
        + json.dumps(
            {
                "targets": summary,
                "killed": killed,
                "total": total,
                "rate": round(rate, 1),
                "sample": args.sample,
            }
        )
    )
    return 0 if rate >= args.goal else 1


if __name__ == "__main__":
    sys.exit(main())
