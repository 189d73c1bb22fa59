// Progressive enhancement only: every flow works without JavaScript.
// Forms marked data-confirm ask before submitting a destructive action.
document.addEventListener("submit", function (ev) {
  var form = ev.target;
  var msg = form && form.getAttribute && form.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});

// A page restored from the back/forward cache (Chrome restores even Cache-Control:
// no-store pages) would show personal data after logout without asking the server;
// reloading lets the server decide (it sends a signed-out visitor home).
window.addEventListener("pageshow", function (ev) {
  if (ev.persisted) {
    window.location.reload();
  }
});
