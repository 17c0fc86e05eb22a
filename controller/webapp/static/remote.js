// The phone remote's QR link: open the remote at once (a POST, so that a link preview
// that only fetches the page does not use the one-time code up).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-autosubmit]");
  if (form) {
    form.requestSubmit();
  }
});
