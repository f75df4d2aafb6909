package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// keepAlive is how often an idle stream sends a comment, so that proxies
// and the browser keep it open.
const keepAlive = 15 * time.Second

// writeTimeout bounds each write to a stream: a client that stops reading
// is cut off instead of holding a goroutine and a stream's place.
const writeTimeout = 30 * time.Second

// lastEventID reads where a client resumes: the Last-Event-ID header a
// reconnecting EventSource sends, else ?last_event_id=. ok is false when
// neither is given; a malformed one is an error.
func lastEventID(req *http.Request) (id uint64, ok bool, err error) {
	s := req.Header.Get("Last-Event-ID")
	if s == "" {
		s = req.URL.Query().Get("last_event_id")
	}
	if s == "" {
		return 0, false, nil
	}
	id, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("last event id %q: want a decimal number", truncate(s, 40))
	}
	return id, true, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// sse writes Server-Sent Events.
type sse struct {
	w  http.ResponseWriter
	f  http.Flusher
	rc *http.ResponseController
}

func newSSE(w http.ResponseWriter) (*sse, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		return nil, false
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f.Flush()
	return &sse{w: w, f: f, rc: rc}, true
}

// send writes one message; id 0 writes none (the client keeps its last).
// data is one line of JSON.
func (s *sse) send(id uint64, kind string, data []byte) error {
	err := s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if errors.Is(err, http.ErrNotSupported) {
		err = nil
	}
	if id > 0 {
		_, err = fmt.Fprintf(s.w, "id: %d\n", id)
	}
	if err == nil {
		_, err = fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", kind, data)
	}
	return err
}

func (s *sse) comment(text string) error {
	s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := fmt.Fprintf(s.w, ": %s\n\n", text)
	return err
}

func (s *sse) flush() { s.f.Flush() }

// follow writes the messages of h after id as they are appended, until the
// request ends, the history closes, a write fails or the client falls
// behind what h retains (it then reconnects and resumes).
func (s *sse) follow(req *http.Request, h *history, id uint64) {
	t := time.NewTicker(keepAlive)
	defer t.Stop()
	for {
		msgs, covered, wake, closed := h.after(id)
		if !covered {
			// Fell behind what is retained: end the stream; the client
			// reconnects with its last id and is brought up to date.
			return
		}
		for _, m := range msgs {
			if err := s.send(m.id, m.kind, m.data); err != nil {
				return
			}
			id = m.id
		}
		s.flush()
		if closed {
			return
		}
		select {
		case <-req.Context().Done():
			return
		case <-wake:
		case <-t.C:
			if s.comment("keep-alive") != nil {
				return
			}
			s.flush()
		}
	}
}
