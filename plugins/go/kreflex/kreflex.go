package kreflex

import (
	"encoding/json"
	"errors"
)

// Plugin is what a kreflex plugin implements; pass it to Register from an init function.
type Plugin interface {
	Describe() PluginInfo
	OnEvent(e Event) ([]Action, *PluginError)
}

var registered Plugin

// Register installs the plugin (call it from `func init()`).
func Register(p Plugin) { registered = p }

// PluginInfo is what describe() returns.
type PluginInfo struct {
	Name, Version string
	Subscriptions []Subscription
	Permissions   []Permission
}

// Subscription to one kind (Group "" is the core group).
type Subscription struct {
	Group, Version, Kind         string
	Namespaces                   []string
	LabelSelector, FieldSelector *string
	GenerationChangedOnly        bool
	Finalizer                    bool
}

// Permission: Resource is a plural, optionally with a subresource (`databases/status`).
type Permission struct {
	Group, Resource string
	Verbs           []string
	Namespaces      []string
}

// EventsPermission allows emitting Kubernetes Events.
func EventsPermission() Permission {
	return Permission{Group: "events.k8s.io", Resource: "events", Verbs: []string{"create", "patch"}}
}

// EventKind of an event.
type EventKind uint8

const (
	Added EventKind = iota
	Modified
	Deleted
	Resync
	Finalizing
)

// Event delivered to OnEvent: the object (and the previous one for modified) as JSON.
type Event struct {
	Kind      EventKind
	Object    string
	OldObject *string
}

// ObjectRef names an object; Namespace nil for cluster-scoped ones.
type ObjectRef struct {
	APIVersion, Kind string
	Namespace        *string
	Name             string
}

// PatchType of a patch.
type PatchType uint8

const (
	Merge PatchType = iota
	JSONPatch
	Apply
)

// Patch of the event's object (Target nil) or another object.
type Patch struct {
	Target      *ObjectRef
	Subresource *string
	Type        PatchType
	Body        string
}

// Severity of a Kubernetes Event.
type Severity uint8

const (
	Normal Severity = iota
	Warning
)

// K8sEvent is a Kubernetes Event on the event's object.
type K8sEvent struct {
	Severity        Severity
	Reason, Message string
}

// Action is one of: Patch, Create (a manifest as JSON), Delete, Event, or RequeueAfterMs.
type Action struct {
	Patch          *Patch
	Create         *string
	Delete         *ObjectRef
	Event          *K8sEvent
	RequeueAfterMs uint32
}

// PluginError fails the call.
type PluginError struct {
	Message   string
	Retryable bool
}

// Fail is a non-retryable error.
func Fail(message string) *PluginError { return &PluginError{Message: message} }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// StatusPatch merge-patches the status subresource of the event's object with body
// (`{"status": {...}}`), marshalled to JSON.
func StatusPatch(body any) Action {
	status := "status"
	return Action{Patch: &Patch{Subresource: &status, Type: Merge, Body: mustJSON(body)}}
}

// MergePatch merge-patches the event's object (target nil) or target.
func MergePatch(body any, target *ObjectRef) Action {
	return Action{Patch: &Patch{Target: target, Type: Merge, Body: mustJSON(body)}}
}

// Create creates an object (owned by the event's object unless it sets owners).
func Create(manifest any) Action {
	m := mustJSON(manifest)
	return Action{Create: &m}
}

// Delete deletes an object.
func Delete(target ObjectRef) Action { return Action{Delete: &target} }

// WarningEvent is a Warning Kubernetes Event on the event's object.
func WarningEvent(reason, message string) Action {
	return Action{Event: &K8sEvent{Severity: Warning, Reason: reason, Message: message}}
}

// NormalEvent is a Normal Kubernetes Event on the event's object.
func NormalEvent(reason, message string) Action {
	return Action{Event: &K8sEvent{Severity: Normal, Reason: reason, Message: message}}
}

// RequeueAfter delivers the object again after ms milliseconds.
func RequeueAfter(ms uint32) Action { return Action{RequeueAfterMs: ms} }

// Object parses the event's object into a map; an invalid one is a non-retryable error.
func Object(text string) (map[string]any, *PluginError) {
	var o map[string]any
	d := json.NewDecoder(stringsReader(text))
	d.UseNumber()
	if err := d.Decode(&o); err != nil || o == nil {
		if err == nil {
			err = errors.New("not a JSON object")
		}
		return nil, Fail("invalid object: " + err.Error())
	}
	return o, nil
}

// Path walks object keys; nil if a step is missing or not an object.
func Path(o any, keys ...string) any {
	for _, k := range keys {
		m, ok := o.(map[string]any)
		if !ok {
			return nil
		}
		if o, ok = m[k]; !ok {
			return nil
		}
	}
	return o
}

// String is v if it is a JSON string.
func String(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

// Int is v if it is a JSON integer.
func Int(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// LogLevel of a log line.
type LogLevel uint8

const (
	Trace LogLevel = iota
	Debug
	Info
	Warn
	Error
)

// Log writes a line to kreflex's log, tagged with the plugin's name.
func Log(level LogLevel, message string) {
	p, n := lowerString(message)
	hostLog(uint32(level), p, n)
}

// Config is the plugin's configuration (`NAME.json` → config) as JSON, if any.
func Config() (string, bool) {
	ret := alloc(12, 4)
	hostGetConfig(ret)
	if get8(ret) == 0 {
		return "", false
	}
	return liftString(get32(ret+4), get32(ret+8)), true
}

// Get reads an object from kreflex's cache (needs a declared get permission).
func Get(target ObjectRef) (string, bool, error) {
	av, avn := lowerString(target.APIVersion)
	k, kn := lowerString(target.Kind)
	nsd, ns, nsn := lowerOption(target.Namespace)
	nm, nmn := lowerString(target.Name)
	ret := alloc(16, 4)
	hostGet(av, avn, k, kn, nsd, ns, nsn, nm, nmn, ret)
	if get8(ret) != 0 {
		return "", false, errors.New(liftString(get32(ret+4), get32(ret+8)))
	}
	if get8(ret+4) == 0 {
		return "", false, nil
	}
	return liftString(get32(ret+8), get32(ret+12)), true, nil
}

// ListObjects reads objects of a kind from kreflex's cache (needs a declared list permission).
func ListObjects(group, version, kind string, namespace, labelSelector *string) ([]string, error) {
	g, gn := lowerString(group)
	v, vn := lowerString(version)
	k, kn := lowerString(kind)
	nsd, ns, nsn := lowerOption(namespace)
	sd, s, sn := lowerOption(labelSelector)
	ret := alloc(12, 4)
	hostListObjects(g, gn, v, vn, k, kn, nsd, ns, nsn, sd, s, sn, ret)
	if get8(ret) != 0 {
		return nil, errors.New(liftString(get32(ret+4), get32(ret+8)))
	}
	ptr, n := get32(ret+4), get32(ret+8)
	out := make([]string, n)
	for i := range out {
		a := ptr + uint32(8*i)
		out[i] = liftString(get32(a), get32(a+4))
	}
	return out, nil
}
