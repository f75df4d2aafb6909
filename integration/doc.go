// Package integration holds multi-node and multi-process tests, drills and
// chaos runs. Nothing imports it.
package integration
