// Package delegate organises channels of more than five members around five
// candidates that relay traffic and aggregate votes.
package delegate
