package server

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/time/rate"
)

// callerLimiter gives every identity (each agency, the secretariat) a
// token bucket of its own, so that one caller flooding the exchange is
// slowed down alone. It implements the go-grpc-middleware ratelimit
// Limiter and runs after authentication.
type callerLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // by actor; bounded by the directory's size
}

func newCallerLimiter(perSecond float64, burst int) *callerLimiter {
	return &callerLimiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

// Limit takes a token from the caller's bucket or refuses the call.
func (l *callerLimiter) Limit(ctx context.Context) error {
	if l.rate <= 0 {
		return nil
	}
	actor := CallerFrom(ctx).Actor()
	l.mu.Lock()
	b := l.buckets[actor]
	if b == nil {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[actor] = b
	}
	l.mu.Unlock()
	if !b.Allow() {
		return fmt.Errorf("%s is over its rate of %g calls per second (bursts of %d); slow down and retry", actor, float64(l.rate), l.burst)
	}
	return nil
}
