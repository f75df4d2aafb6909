package delegate

import "errors"

var (
	// ErrDuplicateMember means an address appears twice in a member list
	// or a delegation list.
	ErrDuplicateMember = errors.New("delegate: duplicate member")

	// ErrUnknownMember means an address names no member of the list given.
	ErrUnknownMember = errors.New("delegate: unknown member")

	// ErrBadDelegation means a delegation the rules refuse: to oneself, to
	// a member that delegates itself, or by a candidate.
	ErrBadDelegation = errors.New("delegate: bad delegation")

	// ErrBadVote means a vote for another channel or proposal, with an
	// option out of range, or whose key or signature does not check.
	ErrBadVote = errors.New("delegate: bad vote")

	// ErrDuplicateVote means two votes by the same voter.
	ErrDuplicateVote = errors.New("delegate: duplicate vote")
)
