/* The console's own behaviour, loaded from the site so that the Content-Security-Policy
   allows no inline script and no eval (htmx's hx-on attributes need eval). Every page
   reads and works without it. */
(function () {
  "use strict";

  // A decision on a queue row answers with the row itself, also when it was refused
  // (a 4xx with X-Console-Fragment: row): swap it in rather than dropping it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.getResponseHeader("X-Console-Fragment") === "row") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Copy buttons (a new token, the SCIM base URL); without JavaScript the fields are
  // selectable and read-only.
  function copy(button) {
    var field = document.getElementById(button.dataset.copy);
    var status = document.querySelector(".copy-status");
    if (!field) {
      return;
    }
    field.select();
    var done = function () {
      if (status) {
        status.textContent = button.dataset.copied;
      }
    };
    var fallback = function () {
      document.execCommand("copy");
      done();
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, fallback);
    } else {
      fallback();
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (button) {
      copy(button);
    }
  });
})();
