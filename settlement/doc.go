// Package settlement holds the Chain interface that nodes use to reach the
// settlement chain, and the proposal and vote logic built on it.
package settlement
