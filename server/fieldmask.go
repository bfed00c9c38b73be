package server

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// applyMask copies the fields named by mask from src to dst. Only
// top-level fields listed in mutable may be named; an empty mask means all
// of them. resource is the request field holding src, for error messages.
func applyMask(dst, src proto.Message, mask *fieldmaskpb.FieldMask, mutable []string, resource string) error {
	paths := mask.GetPaths()
	if len(paths) == 0 {
		paths = mutable
	}
	allowed := make(map[string]bool, len(mutable))
	for _, p := range mutable {
		allowed[p] = true
	}
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	for i, p := range paths {
		if !allowed[p] {
			sorted := append([]string(nil), mutable...)
			sort.Strings(sorted)
			return invalidField(fmt.Sprintf("update_mask.paths[%d]", i),
				fmt.Sprintf("%q cannot be updated here; allowed: %s", p, strings.Join(sorted, ", ")))
		}
		fd := d.Descriptor().Fields().ByName(protoreflect.Name(p))
		if fd == nil {
			return invalidField(resource, "unknown field "+p)
		}
		if s.Has(fd) {
			d.Set(fd, s.Get(fd))
		} else {
			d.Clear(fd)
		}
	}
	return nil
}
