// Package browser tests socle's portal as people use it: socle runs
// in-process on a copy of the demo platform, with apps built and run as
// processes, and Debian's Chromium, headless and driven over the DevTools
// protocol, signs in with real tokens, reads the pages, clicks the buttons
// and watches cells change live. It keeps a screenshot of every page it
// visits under $SOCLE_ARTIFACTS/web/ (else .artifacts/web/ at the root of
// the repository).
package browser
