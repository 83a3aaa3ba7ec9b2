// Atoll console: the few behaviours plain HTML lacks. Everything works without it
// (forms submit, menus open); this only adds copying, confirmations and tidier menus.
"use strict";
document.addEventListener("click", (event) => {
  // Copy buttons: <button data-copy="element-id">.
  const button = event.target.closest("[data-copy]");
  if (button) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const text = source.textContent.trim();
    const done = () => {
      const label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => {});
    } else {
      // Plain http on a non-local host has no clipboard API: select and copy.
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      if (document.execCommand("copy")) done();
    }
    return;
  }
  // Close open menus when clicking elsewhere.
  for (const menu of document.querySelectorAll("details.menu[open]")) {
    if (!menu.contains(event.target)) menu.removeAttribute("open");
  }
});
// Forms that destroy something ask first: <form data-confirm="…">.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
// <select data-autosubmit> submits its form when changed.
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});
// Sliders show their value: <input type="range" data-output="element-id">.
document.addEventListener("input", (event) => {
  const slider = event.target;
  if (!slider.matches("input[type=range][data-output]")) return;
  const output = document.getElementById(slider.dataset.output);
  if (output) output.value = slider.value;
});
