/* After a form is sent, the page that answers puts the keyboard focus where its answer is: on
   the first field refused (its error is next to it), else on the form's own error, else on
   the messages region (saved, refused). A keyboard user reads the answer and tabs on from
   there instead of from the top of the page. Nothing moves if something already has focus. */
(function () {
  "use strict";

  function show(target) {
    // A reloaded page would scroll back to where it was, away from the answer.
    if ("scrollRestoration" in history) history.scrollRestoration = "manual";
    target.focus();
  }

  function place() {
    var active = document.activeElement;
    if (active && active !== document.body && active !== document.documentElement) return;
    var invalid = document.querySelector("main form [aria-invalid=true]");
    if (invalid) {
      show(invalid);
      return;
    }
    var region = document.querySelector("main form [role=alert]");
    if (!region) {
      region = document.querySelector("main > [role=status]");
      if (region && !region.querySelector(".message")) region = null;
    }
    if (region) {
      region.setAttribute("tabindex", "-1");
      show(region);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", place);
  else place();
})();
