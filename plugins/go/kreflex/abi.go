// Package kreflex is the Go binding of the kreflex plugin contract (wit/kreflex.wit, world
// `reactor`) plus typed helpers.
//
// This file is the whole binding, written by hand because no WIT generator for Go builds
// offline: it lowers and lifts the contract's types with the component model's canonical
// ABI (32-bit linear memory; records laid out field by field at their natural alignment;
// strings and lists as (pointer, length); options, results and variants as a one-byte
// discriminant followed by the payload at the payload's alignment). The offsets below are
// those of the WIT types in the comments; `kreflex componentize` embeds the same WIT in the
// module and checks every export and import against it, so a mismatch fails the build
// instead of misbehaving at run time. Regenerate the offsets if the WIT changes (the
// conformance suite will notice).
//
// Memory handed to the host is allocated from the Go heap and kept reachable until the
// call ends: kreflex runs every call in a fresh instance, so nothing needs freeing.
package kreflex

import "unsafe"

var keep [][]byte

// alloc returns the address of size bytes aligned to align, kept alive for the call.
func alloc(size, align uint32) uint32 {
	if size == 0 {
		return align
	}
	b := make([]byte, size+align)
	keep = append(keep, b)
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	return (p + align - 1) &^ (align - 1)
}

// The canonical ABI's allocator, under the names wit-component uses for exports and for
// import results. Not `cabi_realloc`: the WASI adapter would use that one for its own state
// from inside the Go runtime's initialisation, before Go can take calls.
//
//go:wasmexport cabi_export_realloc
func cabiExportRealloc(old, oldSize, align, newSize uint32) uint32 {
	return cabiRealloc(old, oldSize, align, newSize)
}

//go:wasmexport cabi_import_realloc
func cabiImportRealloc(old, oldSize, align, newSize uint32) uint32 {
	return cabiRealloc(old, oldSize, align, newSize)
}

func cabiRealloc(old, oldSize, align, newSize uint32) uint32 {
	p := alloc(newSize, align)
	if old != 0 && oldSize > 0 {
		copy(bytesAt(p, min(oldSize, newSize)), bytesAt(old, min(oldSize, newSize)))
	}
	return p
}

func bytesAt(addr, n uint32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(addr))), n)
}

func put8(addr uint32, v uint8)   { *(*uint8)(unsafe.Pointer(uintptr(addr))) = v }
func put32(addr uint32, v uint32) { *(*uint32)(unsafe.Pointer(uintptr(addr))) = v }
func get8(addr uint32) uint8      { return *(*uint8)(unsafe.Pointer(uintptr(addr))) }
func get32(addr uint32) uint32    { return *(*uint32)(unsafe.Pointer(uintptr(addr))) }

func bool8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// liftString reads a string the host passed (in memory it allocated with cabi_realloc).
func liftString(ptr, n uint32) string {
	if n == 0 {
		return ""
	}
	return string(bytesAt(ptr, n))
}

// putString stores `string` (ptr u32, len u32) at addr.
func putString(addr uint32, s string) {
	p := alloc(uint32(len(s)), 1)
	copy(bytesAt(p, uint32(len(s))), s)
	put32(addr, p)
	put32(addr+4, uint32(len(s)))
}

// putOptionString stores `option<string>` (disc u8, string at +4) at addr.
func putOptionString(addr uint32, s *string) {
	if s == nil {
		put8(addr, 0)
		return
	}
	put8(addr, 1)
	putString(addr+4, *s)
}

// putStrings stores `list<string>` at addr.
func putStrings(addr uint32, items []string) {
	p := alloc(uint32(8*len(items)), 4)
	for i, s := range items {
		putString(p+uint32(8*i), s)
	}
	put32(addr, p)
	put32(addr+4, uint32(len(items)))
}

// putObjectRef stores `object-ref` (36 bytes: api-version 0, kind 8, namespace 16, name 28).
func putObjectRef(addr uint32, r ObjectRef) {
	putString(addr, r.APIVersion)
	putString(addr+8, r.Kind)
	putOptionString(addr+16, r.Namespace)
	putString(addr+28, r.Name)
}

// describe: func() -> plugin-info. The result (32 bytes: name 0, version 8, subscriptions 16,
// permissions 24) is returned through a pointer.
//
//go:wasmexport describe
func exportDescribe() uint32 {
	info := registered.Describe()
	ret := alloc(32, 4)
	putString(ret, info.Name)
	putString(ret+8, info.Version)
	// subscription: 60 bytes: gvk 0 (3 strings), namespaces 24, label-selector 32,
	// field-selector 44, generation-changed-only 56, finalizer 57.
	subs := alloc(uint32(60*len(info.Subscriptions)), 4)
	for i, s := range info.Subscriptions {
		a := subs + uint32(60*i)
		putString(a, s.Group)
		putString(a+8, s.Version)
		putString(a+16, s.Kind)
		putStrings(a+24, s.Namespaces)
		putOptionString(a+32, s.LabelSelector)
		putOptionString(a+44, s.FieldSelector)
		put8(a+56, bool8(s.GenerationChangedOnly))
		put8(a+57, bool8(s.Finalizer))
	}
	put32(ret+16, subs)
	put32(ret+20, uint32(len(info.Subscriptions)))
	// permission: 32 bytes: group 0, resource 8, verbs 16, namespaces 24.
	perms := alloc(uint32(32*len(info.Permissions)), 4)
	for i, p := range info.Permissions {
		a := perms + uint32(32*i)
		putString(a, p.Group)
		putString(a+8, p.Resource)
		putStrings(a+16, p.Verbs)
		putStrings(a+24, p.Namespaces)
	}
	put32(ret+24, perms)
	put32(ret+28, uint32(len(info.Permissions)))
	return ret
}

// on-event: func(e: event) -> result<list<action>, plugin-error>. The event arrives flattened
// (kind, object ptr/len, old-object disc/ptr/len); the result (16 bytes: disc 0, payload 4) is
// returned through a pointer.
//
//go:wasmexport on-event
func exportOnEvent(kind, objPtr, objLen, oldDisc, oldPtr, oldLen uint32) uint32 {
	e := Event{Kind: EventKind(kind), Object: liftString(objPtr, objLen)}
	if oldDisc != 0 {
		old := liftString(oldPtr, oldLen)
		e.OldObject = &old
	}
	actions, err := registered.OnEvent(e)
	ret := alloc(16, 4)
	if err != nil {
		put8(ret, 1)
		putString(ret+4, err.Message) // plugin-error: message 0, retryable 8
		put8(ret+12, bool8(err.Retryable))
		return ret
	}
	put8(ret, 0)
	// action: 68 bytes: disc 0, payload 4.
	list := alloc(uint32(68*len(actions)), 4)
	for i, a := range actions {
		putAction(list+uint32(68*i), a)
	}
	put32(ret+4, list)
	put32(ret+8, uint32(len(actions)))
	return ret
}

func putAction(addr uint32, a Action) {
	p := addr + 4
	switch {
	case a.Patch != nil:
		// patch: 64 bytes: target option<object-ref> 0 (payload 4), subresource 40,
		// patch-type 52, body 56.
		put8(addr, 0)
		if a.Patch.Target != nil {
			put8(p, 1)
			putObjectRef(p+4, *a.Patch.Target)
		} else {
			put8(p, 0)
		}
		putOptionString(p+40, a.Patch.Subresource)
		put8(p+52, uint8(a.Patch.Type))
		putString(p+56, a.Patch.Body)
	case a.Create != nil:
		put8(addr, 1)
		putString(p, *a.Create)
	case a.Delete != nil:
		put8(addr, 2)
		putObjectRef(p, *a.Delete)
	case a.Event != nil:
		// k8s-event: severity 0, reason 4, message 12.
		put8(addr, 3)
		put8(p, uint8(a.Event.Severity))
		putString(p+4, a.Event.Reason)
		putString(p+12, a.Event.Message)
	default:
		put8(addr, 4)
		put32(p, a.RequeueAfterMs)
	}
}

// Host imports (interface kreflex:plugin/host@0.1.0). Results that do not fit one value
// come back through a return area the caller passes last.

//go:wasmimport kreflex:plugin/host@0.1.0 log
func hostLog(level, msgPtr, msgLen uint32)

//go:wasmimport kreflex:plugin/host@0.1.0 get
func hostGet(av, avLen, kind, kindLen, nsDisc, ns, nsLen, name, nameLen, ret uint32)

//go:wasmimport kreflex:plugin/host@0.1.0 list-objects
func hostListObjects(g, gLen, v, vLen, k, kLen, nsDisc, ns, nsLen, selDisc, sel, selLen, ret uint32)

//go:wasmimport kreflex:plugin/host@0.1.0 get-config
func hostGetConfig(ret uint32)

// lowerString passes a Go string to the host: (ptr, len) of a kept copy.
func lowerString(s string) (uint32, uint32) {
	p := alloc(uint32(len(s)), 1)
	copy(bytesAt(p, uint32(len(s))), s)
	return p, uint32(len(s))
}

func lowerOption(s *string) (uint32, uint32, uint32) {
	if s == nil {
		return 0, 0, 0
	}
	p, n := lowerString(*s)
	return 1, p, n
}
