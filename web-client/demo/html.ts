/**
 * The demo's HTML and CSS. No inline script or style (the CSP forbids both); every dynamic value is escaped.
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function loginPage(users: ReadonlyArray<{ id: string; name: string; sites: readonly string[] }>): string {
  const buttons = users
    .map(
      (u) =>
        `<li><form method="post" action="/login"><input type="hidden" name="user" value="${escapeHtml(u.id)}">` +
        `<button type="submit">${escapeHtml(u.name)} <span class="muted">(${escapeHtml(u.sites.join(', '))})</span></button></form></li>`,
    )
    .join('');
  return page(
    'Sign in — ScanRelay demo',
    `<main class="login"><h1>ScanRelay demo — screening management</h1>
<p>Choose a demo user. Each sees only the sites listed.</p><ul class="users">${buttons}</ul></main>`,
  );
}

export function clinicPage(user: { id: string; name: string }): string {
  return page(
    'Today’s clinic — ScanRelay demo',
    `<header class="top"><h1>Today’s clinic</h1>
<div class="who">Signed in as <strong>${escapeHtml(user.name)}</strong>
<form method="post" action="/logout" class="inline"><button type="submit" class="link">Sign out</button></form></div>
<p class="conn">Relay: <span id="conn-state" class="badge">starting</span></p></header>
<main id="app" data-user="${escapeHtml(user.id)}"><p>Loading…</p></main>
<div id="announcer" class="visually-hidden" aria-live="polite" aria-atomic="false"></div>
<script type="module" src="/app.js"></script>`,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="stylesheet" href="/app.css"></head><body>${body}</body></html>`;
}

export const CSS = `
:root { --fg:#1d1d1f; --muted:#555; --line:#d0d4da; --bg:#f6f7f9; --ok:#0b6b2b; --warn:#8a4b00; --bad:#b00020; --info:#004b87; --focus:#ffbf47; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header.top { display:flex; flex-wrap:wrap; gap:.25rem 1.5rem; align-items:baseline; padding:.75rem 1rem; background:#fff; border-bottom:1px solid var(--line); }
header.top h1 { font-size:1.35rem; margin:0; }
header.top p { margin:0; }
main { padding:1rem; max-width:1100px; margin:0 auto; }
h2 { font-size:1.1rem; margin:1.25rem 0 .5rem; }
.muted { color:var(--muted); font-weight:normal; }
button .muted { color:#e8eef5; } /* on the blue button: 7.6:1 (grey #555 on blue was 1.2:1, failing WCAG AA) */
.inline { display:inline; }
button { font:inherit; cursor:pointer; min-height:44px; padding:.4rem .9rem; border-radius:6px; border:2px solid var(--info); background:var(--info); color:#fff; }
button:disabled { background:#e3e6ea; border-color:#c3c8cf; color:#555; cursor:not-allowed; }
button.link { background:none; border:none; color:var(--info); text-decoration:underline; min-height:auto; padding:0 .25rem; }
button:focus-visible, a:focus-visible { outline:3px solid var(--focus); outline-offset:2px; }
.badge { display:inline-block; padding:.1rem .55rem; border-radius:999px; background:#e7ebf0; font-size:.9rem; }
.badge.ok { background:#dcf2e3; color:var(--ok); } .badge.warn { background:#fdecd6; color:var(--warn); }
.badge.bad { background:#fbe0e4; color:var(--bad); } .badge.info { background:#dde9f6; color:var(--info); }
.panels { display:grid; grid-template-columns:repeat(auto-fit, minmax(220px, 1fr)); gap:.75rem; }
.panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.6rem .8rem; }
.panel h3 { margin:0 0 .3rem; font-size:1rem; }
.panel ul { margin:0; padding-left:1.1rem; }
table { width:100%; border-collapse:collapse; background:#fff; border:1px solid var(--line); }
caption { text-align:left; font-weight:600; padding:.4rem 0; }
th, td { text-align:left; padding:.5rem .6rem; border-bottom:1px solid var(--line); vertical-align:middle; }
thead th { background:#eef1f4; font-size:.95rem; }
tbody th { font-weight:600; }
td.state { min-width:12rem; }
.state .detail { display:block; font-size:.9rem; color:var(--muted); }
progress { width:8rem; height:.8rem; vertical-align:middle; }
ol.log { background:#fff; border:1px solid var(--line); border-radius:8px; margin:0; padding:.5rem .5rem .5rem 2.2rem; max-height:16rem; overflow:auto; font-size:.92rem; }
ol.log li { padding:.1rem 0; }
main.login ul.users { list-style:none; padding:0; display:grid; gap:.6rem; max-width:28rem; }
main.login button { width:100%; text-align:left; }
.visually-hidden { position:absolute !important; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
@media (max-width: 820px) {
  main { padding:.6rem; }
  th.nhs, td.nhs { white-space:nowrap; }
  table, thead, tbody, tr, th, td { font-size:.95rem; }
  th, td { padding:.45rem .4rem; }
  td.state { min-width:9rem; }
}
`;
