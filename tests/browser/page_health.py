"""Every page a browser test opens must load cleanly: no console errors, no CSP violations.

``PageHealth`` watches each page of a browser context: console messages of type ``error``,
uncaught exceptions, and ``securitypolicyviolation`` events (reported through a binding the
browser adds, so the page's strict CSP cannot hide them). The ``browser_context`` fixture checks
it when the test ends; a test that provokes an error on purpose (a 404 it asserts, a 429 it
waits out) names it with ``allow(pattern)``. CSP violations are never allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Added to every page before its own scripts (by the browser, not served by the app).
_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__coachlineCsp && window.__coachlineCsp(
    `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile || location.href}:${e.lineNumber}`);
});
"""


@dataclass
class PageHealth:
    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    _allowed: list[re.Pattern] = field(default_factory=list)

    async def watch(self, context) -> None:
        await context.expose_function("__coachlineCsp", self._csp_violation)
        await context.add_init_script(_REPORT_CSP)
        context.on("page", self._watch_page)

    def _csp_violation(self, report: str) -> None:
        self.csp_violations.append(report)

    def _watch_page(self, page) -> None:
        page.on("console", lambda msg: self.console_errors.append(
            f"{msg.text} ({msg.location.get('url', '')})") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.console_errors.append(f"uncaught: {exc}"))

    def allow(self, pattern: str) -> None:
        """Console errors matching ``pattern`` are expected by this test (never CSP violations)."""
        self._allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        errors = [e for e in self.console_errors if not any(p.search(e) for p in self._allowed)]
        return errors + [f"CSP violation: {v}" for v in self.csp_violations]

    def assert_clean(self) -> None:
        problems = self.unexpected()
        assert not problems, "the pages reported errors:\n" + "\n".join(problems)
