package cluster

import "github.com/hashicorp/go-hclog"

// routineRaftWarnings are messages hashicorp/raft logs as warnings on
// paths that are normal for a channel: a follower that joined or
// restarted behind the leader's log ("failed to get previous log"), a
// follower whose uncommitted tail a new leader overwrites ("previous log
// term mis-match"), and the leader walking back to where such a follower's
// log matches ("appendEntries rejected, sending older logs"). Raft repairs
// each by itself; an operator reading warnings should not see them.
var routineRaftWarnings = map[string]bool{
	"failed to get previous log":                 true,
	"previous log term mis-match":                true,
	"appendEntries rejected, sending older logs": true,
}

// raftLogger is the logger Raft gets: it logs routineRaftWarnings at
// debug level and everything else as asked.
type raftLogger struct{ hclog.Logger }

func newRaftLogger(l hclog.Logger) hclog.Logger { return raftLogger{l} }

func (l raftLogger) Warn(msg string, args ...any) {
	if routineRaftWarnings[msg] {
		l.Logger.Debug(msg, args...)
		return
	}
	l.Logger.Warn(msg, args...)
}

func (l raftLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Warn && routineRaftWarnings[msg] {
		level = hclog.Debug
	}
	l.Logger.Log(level, msg, args...)
}

func (l raftLogger) Named(name string) hclog.Logger { return raftLogger{l.Logger.Named(name)} }
func (l raftLogger) ResetNamed(name string) hclog.Logger {
	return raftLogger{l.Logger.ResetNamed(name)}
}
func (l raftLogger) With(args ...any) hclog.Logger { return raftLogger{l.Logger.With(args...)} }
