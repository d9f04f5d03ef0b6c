// Sign-in: POST the credentials as JSON; the server answers with a session cookie.
const form = document.getElementById("signin");
const error = document.getElementById("signin-error");

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  error.hidden = true;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const resp = await fetch("/auth/token", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: form.email.value, password: form.password.value }),
    });
    if (!resp.ok) {
      const body = await resp.json().catch(() => null);
      throw new Error((body && body.error && body.error.message) || "Sign-in failed");
    }
    window.location.assign(form.dataset.next || "/app");
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
    form.password.focus();
  } finally {
    button.disabled = false;
  }
});
