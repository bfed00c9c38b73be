package cli

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// getDatasetKept reads the dataset's definition from the exchange and,
// with a field file, keeps it there; when the exchange cannot be reached
// it returns the kept one, so that `datasets push` reads rows against it
// and queues them in the outbox.
func getDatasetKept(ctx context.Context, c *client.Client, name string) (*exchangev1.Dataset, error) {
	d, err := getDataset(ctx, c, name)
	if c.Outbox == nil {
		return d, err
	}
	f := c.Outbox.File()
	if err == nil {
		b, merr := proto.Marshal(d)
		if merr == nil {
			merr = f.PutDefinition(name, b)
		}
		return d, merr
	}
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		return nil, err
	}
	b, ok, kerr := f.Definition(name)
	if kerr != nil {
		return nil, kerr
	}
	if !ok {
		return nil, status.Errorf(status.Code(err), "%s; and this machine keeps no definition of %s to read the rows against (a push while the exchange can be reached keeps it)",
			status.Convert(err).Message(), name)
	}
	kept := new(exchangev1.Dataset)
	if err := proto.Unmarshal(b, kept); err != nil {
		return nil, fmt.Errorf("the definition of %s kept in the field file: %w", name, err)
	}
	return kept, nil
}
