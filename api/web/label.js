// The label page's print button (a module file: the page's Content-Security-Policy allows no inline script).
document.getElementById('print')?.addEventListener('click', () => window.print());
