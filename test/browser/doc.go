// Package browser tests socle's portal as people use it: socle runs
// in-process on a copy of the demo platform, with apps built and run as
// processes, and Debian's Chromium, headless and driven over the DevTools
// protocol, signs in with real tokens, reads the pages, clicks the buttons
// and watches cells change live. Every page is also checked at a desktop
// and a phone width (390 px) with axe-core, from npm (npm ci in this
// directory, as scripts/test does), evaluated in the page, and for
// anything that runs off the side. It keeps a screenshot of every page it
// visits under $SOCLE_ARTIFACTS/web/ (else .artifacts/web/ at the root of
// the repository).
package browser
