package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNextDoublesUpToMax(t *testing.T) {
	b := New(Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond})
	want := []time.Duration{10, 20, 40, 50, 50}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("wait %d: got %s, want %s", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 10*time.Millisecond {
		t.Fatalf("after Reset: got %s, want 10ms", got)
	}
}

func TestDefaults(t *testing.T) {
	b := New(Policy{})
	if got := b.Next(); got != 10*time.Millisecond {
		t.Fatalf("default Initial: got %s", got)
	}
	b = New(Policy{Initial: time.Second, Max: time.Millisecond})
	b.Next()
	if got := b.Next(); got != time.Second {
		t.Fatalf("Max below Initial is raised to it: got %s", got)
	}
}

func TestWaitEndsWithContextOrStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if New(Policy{Initial: time.Hour}).Wait(ctx) {
		t.Fatal("Wait on a cancelled context returned true")
	}
	stop := make(chan struct{})
	close(stop)
	if New(Policy{Initial: time.Hour}).Wait(context.Background(), nil, stop) {
		t.Fatal("Wait with a closed stop channel returned true")
	}
	if !New(Policy{Initial: time.Microsecond}).Wait(context.Background()) {
		t.Fatal("Wait returned false with nothing to stop it")
	}
}

func TestRetry(t *testing.T) {
	errAgain, errFinal := errors.New("again"), errors.New("final")
	calls := 0
	v, err := Retry(context.Background(), Policy{Initial: time.Microsecond}, nil, func(context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, errAgain
		}
		return 7, nil
	})
	if err != nil || v != 7 || calls != 3 {
		t.Fatalf("Retry = %d, %v after %d calls; want 7, nil after 3", v, err, calls)
	}

	calls = 0
	_, err = Retry(context.Background(), Policy{Initial: time.Microsecond},
		func(err error) bool { return errors.Is(err, errFinal) },
		func(context.Context) (int, error) { calls++; return 0, errFinal })
	if !errors.Is(err, errFinal) || calls != 1 {
		t.Fatalf("a final error: got %v after %d calls", err, calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	_, err = Retry(ctx, Policy{Initial: time.Microsecond}, nil, func(context.Context) (int, error) {
		calls++
		if calls == 2 {
			cancel()
		}
		return 0, errAgain
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled Retry: got %v, want context.Canceled", err)
	}
}
