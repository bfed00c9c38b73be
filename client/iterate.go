package client

import (
	"context"
	"iter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pageFetcher fetches the page that token names (the first page for "")
// and returns its items and the next token ("" after the last page).
type pageFetcher[T any] func(ctx context.Context, token string) (items []T, next string, err error)

// paginate turns a paged List call into an iterator over all items. It
// fetches a page only when the previous one is used up, stops when the
// caller stops, and on error yields (zero, err) once and stops. Only an
// empty next token ends the list: a page may be short or empty and still
// have one (a filtered page stops after its scan budget of records). A server
// that repeats a page token would loop for ever; paginate stops with an
// INTERNAL error instead.
func paginate[T any](ctx context.Context, fetch pageFetcher[T]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		token := ""
		for {
			items, next, err := fetch(ctx, token)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == token {
				yield(zero, status.Errorf(codes.Internal, "client: server repeated page token %q", next))
				return
			}
			token = next
		}
	}
}

// Collect gathers all items of an iterator made by this package into a
// slice, stopping at the first error, which it returns with the items read
// so far.
func Collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var all []T
	for item, err := range seq {
		if err != nil {
			return all, err
		}
		all = append(all, item)
	}
	return all, nil
}
