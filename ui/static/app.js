// The dashboard's only script: a filter whose select is marked
// data-autosubmit applies as soon as it changes. Every page works
// without it (each form has its own submit button).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () {
      if (el.form) {
        el.form.requestSubmit();
      }
    });
  });
});
