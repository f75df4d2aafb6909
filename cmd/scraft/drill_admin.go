package main

import (
	"fmt"
	"net/http"
	"os"
	"syscall"
)

// drillCrash answers POST /drill/crash: on a node started with
// --allow-drills it logs that it was asked to and kills its own process
// with SIGKILL, as a crash would (nothing is flushed or closed first), so
// that scraft drill failover can fail the leader of running nodes. Their
// supervisor (systemd, Kubernetes) is what starts the node again.
func (r *runningNode) drillCrash(w http.ResponseWriter, req *http.Request) {
	if !r.opts.AllowDrills {
		http.Error(w, "drills are off on this node: start it with --allow-drills", http.StatusForbidden)
		return
	}
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	r.opts.Logger.Warn("drill: crashing on request (SIGKILL to this process)", "from", req.RemoteAddr)
	fmt.Fprintln(w, "crashing")
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
}
