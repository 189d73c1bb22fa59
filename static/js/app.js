// Progressive enhancement only: every flow works without JavaScript.
// Forms marked data-confirm ask before submitting a destructive action.
document.addEventListener("submit", function (ev) {
  var form = ev.target;
  var msg = form && form.getAttribute && form.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});
