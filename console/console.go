package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

var (
	// ErrClosed means the console is closed.
	ErrClosed = errors.New("console: closed")
	// ErrNotReady means a channel view has no state yet.
	ErrNotReady = errors.New("console: channel view not ready yet")
	// ErrNotWorld means a column was asked of a channel that is not a
	// MoveCraft world.
	ErrNotWorld = errors.New("console: not a MoveCraft channel")
	// ErrNotHosted means the node does not host the channel.
	ErrNotHosted = errors.New("console: channel not hosted on this node")
)

//go:embed assets
var assets embed.FS

// Console serves the web console. Create it with New, mount it with
// Register, stop it with Close.
//
// Threading: its handlers may run on many goroutines at once.
type Console struct {
	cfg     Config
	logger  hclog.Logger
	cluster *clusterWatch
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	streams atomic.Int64
	// askedAt is when the cluster view was last asked for as JSON (Unix
	// ns): members are read while someone asks or streams.
	askedAt atomic.Int64
	// dialMu serialises dialing the client; mu guards the rest.
	dialMu sync.Mutex
	mu     struct {
		sync.Mutex
		client *client.Client
		views  map[protocol.ChannelID]*channelView
		closed bool
	}
	closeOnce sync.Once
}

// New starts a console: its cluster view reads the node from now on.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	c := &Console{cfg: cfg, logger: cfg.Logger.Named("console")}
	c.cluster = newClusterWatch(cfg.Node, cfg.Interval, cfg.History, c.watched)
	c.mu.views = map[protocol.ChannelID]*channelView{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.cluster.run(c.ctx)
	}()
	return c, nil
}

// Close stops the cluster view, every channel view and their streams.
// Safe to call twice.
func (c *Console) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.mu.closed = true
		cl := c.mu.client
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		if cl != nil {
			cl.Close()
		}
	})
	return nil
}

// Views returns how many channel views follow their channel now.
func (c *Console) Views() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.mu.views {
		select {
		case <-v.done:
		default:
			n++
		}
	}
	return n
}

// Streams returns how many event streams are open now.
func (c *Console) Streams() int { return int(c.streams.Load()) }

// Register mounts the console on mux: the page at /, its assets, the JSON
// API under /console/api/ and the event streams.
func (c *Console) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "assets")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, req, static, "index.html")
	})
	mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /console/api/cluster", c.serveClusterJSON)
	mux.HandleFunc("GET /console/events", c.serveClusterEvents)
	mux.HandleFunc("GET /console/api/channels/{id}", c.serveChannelJSON)
	mux.HandleFunc("GET /console/api/channels/{id}/column", c.serveColumn)
	mux.HandleFunc("GET /console/channels/{id}/events", c.serveChannelEvents)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// watchedFor is how long a JSON request for the cluster view keeps the
// members read.
const watchedFor = 30 * time.Second

func (c *Console) watched() bool {
	return c.streams.Load() > 0 || time.Since(time.Unix(0, c.askedAt.Load())) < watchedFor
}

func (c *Console) serveClusterJSON(w http.ResponseWriter, _ *http.Request) {
	c.askedAt.Store(time.Now().UnixNano())
	v := c.cluster.view()
	if v.Channels == nil {
		v.Channels = []ChannelState{}
		v.Node = c.cfg.Node.Address()
	}
	writeJSON(w, v)
}

// stream counts an open event stream; false (and 503 written) when
// MaxStreams are open.
func (c *Console) stream(w http.ResponseWriter) (done func(), ok bool) {
	if c.streams.Add(1) > int64(c.cfg.MaxStreams) {
		c.streams.Add(-1)
		http.Error(w, fmt.Sprintf("console: %d event streams open, the most this node serves", c.cfg.MaxStreams), http.StatusServiceUnavailable)
		return nil, false
	}
	return func() { c.streams.Add(-1) }, true
}

// serveClusterEvents streams the cluster view: after Last-Event-ID when
// it is still retained, else "reset" and every retained message.
func (c *Console) serveClusterEvents(w http.ResponseWriter, req *http.Request) {
	last, resume, err := lastEventID(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	done, ok := c.stream(w)
	if !ok {
		return
	}
	defer done()
	s, ok := newSSE(w)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	h := c.cluster.log
	if resume && last <= h.last() {
		if _, covered, _, _ := h.after(last); covered {
			s.follow(req, h, last)
			return
		}
	}
	// A first connection, or one whose id is gone (or from an earlier
	// run of the node): start over.
	msgs := h.all()
	if s.send(0, "reset", []byte("{}")) != nil {
		return
	}
	var from uint64
	for _, m := range msgs {
		if s.send(m.id, m.kind, m.data) != nil {
			return
		}
		from = m.id
	}
	s.follow(req, h, from)
}

// hosted reports whether the node hosts the channel, as last read.
func (c *Console) hosted(id protocol.ChannelID) bool {
	for _, ch := range c.cluster.view().Channels {
		if ch.Channel == id && ch.Retired == "" {
			return true
		}
	}
	return false
}

// view returns the channel's view, started on first use and again after
// one that stopped.
func (c *Console) view(req *http.Request) (*channelView, int, error) {
	id, err := protocol.ParseChannelID(req.PathValue("id"))
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	c.mu.Lock()
	v := c.mu.views[id]
	closed := c.mu.closed
	c.mu.Unlock()
	if closed {
		return nil, http.StatusServiceUnavailable, ErrClosed
	}
	if v != nil {
		select {
		case <-v.done:
			v = nil // stopped: start again
		default:
		}
	}
	if v == nil {
		if !c.hosted(id) {
			return nil, http.StatusNotFound, fmt.Errorf("%w: %s", ErrNotHosted, id)
		}
		cl, err := c.client(req.Context())
		if err != nil {
			return nil, http.StatusServiceUnavailable, err
		}
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return nil, http.StatusServiceUnavailable, ErrClosed
		}
		if cur := c.mu.views[id]; cur != nil && cur != v {
			select {
			case <-cur.done:
			default:
				v = cur
			}
		}
		if v == nil {
			v = newChannelView(id, c.cfg.Node, c.cfg.Updates, c.cfg.Idle, c.logger)
			c.mu.views[id] = v
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				v.run(c.ctx, cl)
			}()
		}
		c.mu.Unlock()
	}
	v.touch()
	// Wait for its first state, bounded.
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-v.readyCh:
	case <-t.C:
		return nil, http.StatusServiceUnavailable, ErrNotReady
	case <-req.Context().Done():
		return nil, http.StatusServiceUnavailable, req.Context().Err()
	}
	return v, 0, nil
}

// client returns the console's SDK client, dialing it on first use.
func (c *Console) client(ctx context.Context) (*client.Client, error) {
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	c.mu.Lock()
	cl := c.mu.client
	c.mu.Unlock()
	if cl != nil {
		return cl, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := c.cfg.Dial(dctx)
	if err != nil {
		return nil, fmt.Errorf("console: connect to the node's client API: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		cl.Close()
		return nil, ErrClosed
	}
	c.mu.client = cl
	return cl, nil
}

func (c *Console) serveChannelJSON(w http.ResponseWriter, req *http.Request) {
	v, code, err := c.view(req)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	snap, err := v.snapshot()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, snap)
}

// serveColumn answers ?x=&y= with a MoveCraft cell's voxels.
func (c *Console) serveColumn(w http.ResponseWriter, req *http.Request) {
	coord := func(name string, size int) (int, error) {
		s := req.URL.Query().Get(name)
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n >= size {
			return 0, fmt.Errorf("%s=%q: want 0..%d", name, truncate(s, 20), size-1)
		}
		return n, nil
	}
	x, err := coord("x", mcSizeX)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	y, err := coord("y", mcSizeY)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, code, err := c.view(req)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	col, err := v.column(x, y)
	switch {
	case errors.Is(err, ErrNotWorld):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		writeJSON(w, col)
	}
}

// serveChannelEvents streams a channel view: the updates after
// Last-Event-ID (a height) when they are retained, else a snapshot and
// the updates after it.
func (c *Console) serveChannelEvents(w http.ResponseWriter, req *http.Request) {
	last, resume, err := lastEventID(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, code, err := c.view(req)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	done, ok := c.stream(w)
	if !ok {
		return
	}
	defer done()
	v.users.Add(1)
	defer func() {
		v.users.Add(-1)
		v.touch()
	}()
	if resume && v.resumable(last) {
		s, ok := newSSE(w)
		if !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		s.follow(req, v.hist, last)
		return
	}
	snap, err := v.snapshot()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	b, err := json.Marshal(snap)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s, ok := newSSE(w)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	if s.send(snap.Height, "snapshot", b) != nil {
		return
	}
	s.follow(req, v.hist, snap.Height)
}
