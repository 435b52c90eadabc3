"""Writes workloads.rs: the Json impls of the protobuf messages of Deployment, Service,
PodDisruptionBudget and NetworkPolicy (and every message they contain), from the k8s-pb
messages (fields by protobuf tag) and the Go types of k8s.io/api (JSON names, inline
embedding, omitempty, pointers).

    python3 workloads.py ~/.cargo/registry/src/*/k8s-pb-0.9.0/src path/to/kubernetes-api workloads.rs
    cargo fmt
"""
import re, subprocess, sys

HEADER = '//! Protobuf bodies of the workload and network kinds (`apps/v1` Deployment, `v1` Service,\n//! `policy/v1` PodDisruptionBudget, `networking.k8s.io/v1` NetworkPolicy) and every message\n//! they contain, which kubectl sends for `kubectl create deployment|service|pdb`. Written\n//! by `workloads.py` (beside this file) from the `k8s-pb` messages (every field, matched by\n//! protobuf tag) and the Go types of `k8s.io/api` (JSON names, `json:",inline"` embedding,\n//! and `omitempty`): Go\'s protobuf always carries a non-pointer bool or number, its JSON\n//! leaves it out when zero, so those are `omit_zero`; pointer fields keep an explicit zero\n//! (`allowPrivilegeEscalation: false`).\n\n\nuse super::{Json, fields, inlined, omit_zero};\nuse k8s_pb::api::apps::v1 as apps;\nuse k8s_pb::api::core::v1 as core_v1;\nuse k8s_pb::api::networking::v1 as networking;\nuse k8s_pb::api::policy::v1 as policy;\nuse k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;\nuse serde_json::Value;\n\n'
PB = sys.argv[1]  # k8s-pb's src/ folder
API = sys.argv[2]  # a git clone of k8s.io/api (github.com/kubernetes/api)
OUT = sys.argv[3]  # workloads.rs
MODS = {  # alias -> (k8s-pb path, go package path or None)
    'core_v1': ('api/core/v1', 'core/v1'),
    'apps': ('api/apps/v1', 'apps/v1'),
    'policy': ('api/policy/v1', 'policy/v1'),
    'networking': ('api/networking/v1', 'networking/v1'),
    'meta': ('apimachinery/pkg/apis/meta/v1', None),
}
PATH2ALIAS = {v[0].replace('/', '::'): k for k, v in MODS.items()}
# Types with a Json impl already in proto.rs.
DONE = {('meta', t) for t in ['ObjectMeta', 'OwnerReference', 'ManagedFieldsEntry', 'LabelSelector',
        'LabelSelectorRequirement', 'FieldSelectorRequirement', 'DeleteOptions', 'Preconditions', 'Time', 'MicroTime', 'FieldsV1']}
DONE |= {('core_v1', t) for t in ['ObjectReference', 'LocalObjectReference', 'Namespace', 'NamespaceSpec', 'NamespaceStatus',
        'NamespaceCondition', 'ConfigMap', 'Secret', 'ServiceAccount', 'Event', 'EventSource', 'EventSeries']}
SPECIAL = {'Quantity', 'IntOrString', 'RawExtension'}

def parse_pb(alias):
    text = open(f'{PB}/{MODS[alias][0]}/mod.rs').read()
    structs = {}
    for m in re.finditer(r'pub struct (\w+) \{(.*?)\n\}', text, re.S):
        fields = []
        body = '\n'.join(l for l in m.group(2).split('\n') if not l.strip().startswith('///'))
        body = re.sub(r'\s+', ' ', body)
        for f in re.finditer(r'#\[prost\((.*?)\)\] pub ((?:r#)?\w+): (.*?),(?= #\[|\s*$)', body):
            attr, name, ty = f.groups()
            tag = re.search(r'tag = "(\d+)"', attr)
            if not tag: continue
            fields.append((name, ty, int(tag.group(1))))
        structs[m.group(1)] = fields
    return structs

def parse_go(alias):
    pkg = MODS[alias][1]
    if not pkg: return {}
    files = subprocess.run(['git', 'ls-tree', '--name-only', f'HEAD:{pkg}'], cwd=API, capture_output=True, text=True).stdout.split()
    text = ''.join(subprocess.run(['git', 'show', f'HEAD:{pkg}/{f}'], cwd=API, capture_output=True, text=True).stdout
                   for f in files if f.endswith('.go') and not f.startswith('zz_') and not f.endswith('_test.go') and f != 'generated.pb.go')
    structs = {}
    for m in re.finditer(r'^type (\w+) struct \{(.*?)^\}', text, re.S | re.M):
        fields = {}
        for line in m.group(2).split('\n'):
            line = line.strip()
            if line.startswith('//') or 'protobuf:"' not in line: continue
            t = re.search(r'protobuf:"\w+,(\d+),', line)
            j = re.search(r'json:"([^"]*)"', line)
            decl = line.split('`')[0].split()
            if len(decl) == 1: gotype, name = decl[0], None
            else: name, gotype = decl[0], decl[1]
            jname, *opts = (j.group(1) if j else '').split(',')
            fields[int(t.group(1))] = dict(json=jname, omitempty='omitempty' in opts,
                                           pointer=gotype.startswith('*'), gotype=gotype.lstrip('*'))
        structs[m.group(1).lower()] = fields
    return structs

pb = {a: parse_pb(a) for a in MODS}
go = {a: parse_go(a) for a in MODS}

def refs(alias, ty):
    out = []
    for m in re.finditer(r'((?:super::)*(?:[a-z_0-9]+::)*)([A-Z]\w*)', ty):
        path, name = m.groups()
        if name in ('Option', 'Vec', 'String', 'BTreeMap', 'Box'): continue
        if path and 'super::' in path:
            cur = MODS[alias][0].split('/')
            segs = path.rstrip(':').split('::')
            while segs and segs[0] == 'super':
                segs.pop(0); cur.pop()
            p = '::'.join(cur + segs)
            a = PATH2ALIAS.get(p)
            if a is None:
                if name in SPECIAL: continue
                print('unknown path', path, name, file=sys.stderr); continue
        elif path in ('', None):
            a = alias
        else:
            continue
        out.append((a, name))
    return out

roots = [('apps', 'Deployment'), ('core_v1', 'Service'), ('policy', 'PodDisruptionBudget'), ('networking', 'NetworkPolicy')]
seen, order = set(), []
stack = list(reversed(roots))
while stack:
    t = stack.pop()
    if t in seen or t in DONE: continue
    seen.add(t); order.append(t)
    a, n = t
    if n not in pb[a]:
        print('missing pb', t, file=sys.stderr); continue
    for fname, ty, tag in pb[a][n]:
        for r in refs(a, ty):
            if r not in seen and r not in DONE: stack.append(r)

def camel(s):
    parts = s.split('_')
    return parts[0] + ''.join(p[:1].upper() + p[1:] for p in parts[1:])

INTS = {'bool', 'int32', 'int64', 'int', 'float64'}
out = []
for a, n in order:
    gofields = go[a].get(n.lower())
    entries, inline = [], []
    for fname, ty, tag in pb[a][n]:
        g = (gofields or {}).get(tag)
        jname = g['json'] if g else camel(fname.removeprefix('r#'))
        expr = f'self.{fname}.json()'
        if g and g['json'] == '':
            inline.append(expr); continue
        if g and g['omitempty'] and not g['pointer'] and g['gotype'] in INTS:
            expr = f'omit_zero({expr})'
        entries.append(f'("{jname}", {expr})')
    body = 'fields([' + ', '.join(entries) + '])'
    if inline:
        body = f'inlined({body}, [' + ', '.join(inline) + '])'
    note = '' if gofields else ' // no Go struct found: every field kept'
    out.append(f'impl Json for {a}::{n} {{\n    fn json(&self) -> Option<Value> {{\n        {body}\n    }}\n}}\n')
    if not gofields: print('no go struct for', a, n, file=sys.stderr)
print(len(order), 'types', file=sys.stderr)
body = '\n'.join(out).replace('("observedGeneration", self.observed_generation.json())',
    '("observedGeneration", omit_zero(self.observed_generation.json()))')
open(OUT, 'w').write(HEADER + body)
