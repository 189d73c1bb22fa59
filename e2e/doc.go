// Package e2e holds the real-browser end-to-end suite of Connect Lumin.
//
// The tests build the app, start it in sandbox mode on a loopback port with a fresh
// database, and drive it with Debian's Chromium through chromedp only as a person
// would: clicks, form fills, navigation and the sandbox's own pages, which stand in
// for Lumin's. Every page visited is checked for console errors, CSP violations and
// serious or critical accessibility violations (axe-core). See README.md here.
//
// The package has no code outside its tests; this file only carries the package
// documentation, so that `go build ./...` and `go vet ./...` see a package.
package e2e
