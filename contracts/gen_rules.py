#!/usr/bin/env python3
"""Generates contracts/rules.json: golden vectors for target rules (DESIGN.md
section 1; semantics in crates/atoll-core/src/rules/mod.rs).

    pip install mmh3
    python3 contracts/gen_rules.py > contracts/rules.json

Each case gives a rule in its canonical text form and its JSON form (the two must
be the same rule), devices and whether each matches. Expected outcomes are written
here by hand from the documented semantics; where a percentage decides, the
outcome is computed with Python's mmh3 (bucket = murmur3_x86_32("salt:unit") %
100000), independently of the Rust code. Vectors are only ever added.
"""
import json
import mmh3


def bucket(salt, unit):
    return mmh3.hash(f"{salt}:{unit}".encode("utf-8"), 0, signed=False) % 100_000


def in_percent(salt, unit, percent):
    return bucket(salt, unit) < round(percent * 1000)


def dev(device_id, matches, note="", **attributes):
    entry = {"attributes": {"device_id": device_id, **attributes}, "matches": matches}
    if note:
        entry["note"] = note
    return entry


def cond(field, op, value):
    key = "values" if op in ("in", "not_in") else "list" if op.endswith("in_list") else "value"
    return {"field": field, "op": op, key: value}


S = "sw_new_checkout"
R = "rel_2024_canary"

cases = []


def case(name, text, json_form, devices, salt=S, also=()):
    entry = {"name": name, "text": text}
    if also:
        entry["also"] = list(also)
    entry.update({"json": json_form, "salt": salt, "devices": devices})
    cases.append(entry)


case(
    "the example of the issue",
    "(app_version >= 2.1 and platform in (android, ios) and percent(5)) or user in list:beta-testers",
    {"or": [
        {"and": [cond("app_version", ">=", "2.1"), cond("platform", "in", ["android", "ios"]), {"percent": 5}]},
        cond("user", "in_list", "beta-testers"),
    ]},
    [
        dev("dev-28", in_percent(S, "dev-28", 5), "bucket %d" % bucket(S, "dev-28"), app_version="2.3.0", platform="android"),
        dev("dev-32", in_percent(S, "dev-32", 5), "bucket %d" % bucket(S, "dev-32"), app_version="2.3", platform="ios"),
        dev("dev-28", False, "version too low", app_version="2.0.9", platform="android"),
        dev("dev-28", False, "a pre-release of 2.1 is below 2.1", app_version="2.1.0-beta.1", platform="android"),
        dev("dev-28", True, "case and a leading v", app_version="v2.10", platform="Android"),
        dev("dev-28", False, "web is not listed", app_version="2.1", platform="web"),
        dev("dev-28", False, "unknown version", platform="android"),
        dev("dev-7", True, "beta tester", user_id="u-1", app_version="1.0"),
    ],
    also=[
        "app_version >= 2.1 and platform in (android, ios) and percent(5) or user in list:beta-testers",
        "APP_VERSION>=2.1 AND platform IN (android,ios) AND percent(5%) OR user IN list : beta-testers",
    ],
)
case("tolerant version order", "app_version > 10.2", cond("app_version", ">", "10.2"), [
    dev("d", False, "10.2.0 = 10.2", app_version="10.2.0"),
    dev("d", True, app_version="10.10"),
    dev("d", True, app_version="10.2.0.1"),
    dev("d", False, app_version="9.99"),
    dev("d", True, app_version="10.3-beta"),
    dev("d", False, "not a version", app_version="ten"),
    dev("d", False, "empty is absent", app_version=""),
])
case("wildcard", "app_version = 1.2.x", cond("app_version", "=", "1.2.x"), [
    dev("d", True, app_version="1.2"),
    dev("d", True, app_version="1.2.7.1"),
    dev("d", True, "wildcards include pre-releases", app_version="1.2.0-rc.1"),
    dev("d", False, app_version="1.3.0"),
    dev("d", False, "1 is 1.0", app_version="1"),
], also=["app_version == 1.2.x", "APP_VERSION=\"1.2.x\""])
case("negated wildcard includes unknown versions", "app_version != 1.2.x", cond("app_version", "!=", "1.2.x"), [
    dev("d", True),
    dev("d", True, app_version="garbage"),
    dev("d", False, app_version="1.2.3"),
    dev("d", True, app_version="1.4"),
])
case("version ranges", 'app_version in (1.2.x, ">=2.0 <2.5", 3.0.1)',
     cond("app_version", "in", ["1.2.x", ">=2.0 <2.5", "3.0.1"]), [
    dev("d", True, app_version="1.2.9"),
    dev("d", True, app_version="2.4.99"),
    dev("d", False, app_version="2.5"),
    dev("d", True, "a pre-release of 2.5 is below 2.5", app_version="2.5.0-beta"),
    dev("d", True, app_version="3.0.1"),
    dev("d", True, app_version="3.0.1.0"),
    dev("d", False, app_version="3.0.2"),
    dev("d", False, app_version="1.9"),
])
case("negated version ranges", 'app_version not in ("<1.0", 1.5.x)', cond("app_version", "not_in", ["<1.0", "1.5.x"]), [
    dev("d", False, app_version="0.9"),
    dev("d", False, app_version="1.5.1"),
    dev("d", True, app_version="1.4"),
    dev("d", True),
])
case("os version and platform", "os_version >= 14 and platform = android",
     {"and": [cond("os_version", ">=", "14"), cond("platform", "=", "android")]}, [
    dev("d", True, os_version="14", platform="android"),
    dev("d", False, os_version="13.0.1", platform="android"),
    dev("d", True, os_version="14.0.0", platform="ANDROID"),
    dev("d", False, os_version="15", platform="ios"),
])
case("pre-releases sort before the release", "app_version < 2.3.0", cond("app_version", "<", "2.3.0"), [
    dev("d", True, app_version="2.3.0-beta.1"),
    dev("d", True, app_version="2.3.0-rc.2"),
    dev("d", False, app_version="2.3.0"),
    dev("d", False, "build metadata is ignored", app_version="2.3.0+45"),
])
case("pre-release identifiers", "app_version >= 2.3.0-beta.2", cond("app_version", ">=", "2.3.0-beta.2"), [
    dev("d", True, "numeric identifiers compare as numbers", app_version="2.3.0-beta.11"),
    dev("d", False, app_version="2.3.0-beta.1"),
    dev("d", True, "pre-release words ignore case", app_version="2.3.0-BETA.3"),
    dev("d", False, app_version="2.3.0-alpha"),
    dev("d", True, app_version="2.3.0-rc"),
    dev("d", True, app_version="2.3.0"),
])
case("text ignores case", "channel = play", cond("channel", "=", "play"), [
    dev("d", True, channel="PLAY"),
    dev("d", True, channel="play"),
    dev("d", False, channel="Play Store"),
    dev("d", False),
    dev("d", False, channel=""),
], also=["channel == play", "channel = 'play'", 'CHANNEL="play"'])
case("unicode text", 'city in (münchen, 上海, "são paulo")', cond("city", "in", ["münchen", "上海", "são paulo"]), [
    dev("d", True, city="MÜNCHEN"),
    dev("d", True, city="上海"),
    dev("d", True, city="São Paulo"),
    dev("d", False, city="Munchen"),
])
case("quoted values", 'model = "Pixel 8"', cond("model", "=", "Pixel 8"), [
    dev("d", True, model="pixel 8"),
    dev("d", False, model="Pixel 8 Pro"),
])
case("not equal includes absent", "channel != test", cond("channel", "!=", "test"), [
    dev("d", True),
    dev("d", False, channel="TEST"),
    dev("d", True, channel="play"),
])
case("not in", "network not in (2g, 3g)", cond("network", "not_in", ["2g", "3g"]), [
    dev("d", False, network="2G"),
    dev("d", True, network="wifi"),
    dev("d", True),
])
case("region and city", "region = cn-31 and city = shanghai",
     {"and": [cond("region", "=", "cn-31"), cond("city", "=", "shanghai")]}, [
    dev("d", True, region="CN-31", city="Shanghai"),
    dev("d", False, region="CN-11", city="Shanghai"),
])
case("os and locale", "os = HarmonyOS or locale in (zh-cn, zh-hans-cn)",
     {"or": [cond("os", "=", "HarmonyOS"), cond("locale", "in", ["zh-cn", "zh-hans-cn"])]}, [
    dev("d", True, os="harmonyos"),
    dev("d", True, os="Android", locale="zh-CN"),
    dev("d", False, os="Android", locale="en-GB"),
])
case("device ids are exact", "device in (dev-1, dev-2)", cond("device", "in", ["dev-1", "dev-2"]), [
    dev("dev-1", True),
    dev("DEV-1", False),
    dev("dev-3", False),
])
case("user equality", "user = u-1", cond("user", "=", "u-1"), [
    dev("d", True, user_id="u-1"),
    dev("d", False, user_id="U-1"),
    dev("d", False),
    dev("d", False, user_id=""),
])
case("user inequality includes anonymous", "user != u-1", cond("user", "!=", "u-1"), [
    dev("d", True),
    dev("d", False, user_id="u-1"),
    dev("d", True, user_id="u-2"),
])
case("lists", "(user in list:beta-testers or device in list:qa-devices) and user not in list:blocked",
     {"and": [
         {"or": [cond("user", "in_list", "beta-testers"), cond("device", "in_list", "qa-devices")]},
         cond("user", "not_in_list", "blocked"),
     ]}, [
    dev("d", True, user_id="u-2"),
    dev("d", False, "in beta but blocked", user_id="u-3"),
    dev("qa-1", True, "anonymous devices are in no list, so not in blocked"),
    dev("d", False),
    dev("qa-1", False, user_id="u-3"),
])
case("a missing list is empty", "device not in list:no-such-list", cond("device", "not_in_list", "no-such-list"), [
    dev("d", True),
    dev("qa-1", True),
])
case("percent by user, falling back to the device", "percent(15, user)", {"percent": 15, "unit": "user"}, [
    dev("dev-7", in_percent(S, "u-4", 15), "user bucket %d" % bucket(S, "u-4"), user_id="u-4"),
    dev("dev-28", in_percent(S, "u-23", 15), "user bucket %d" % bucket(S, "u-23"), user_id="u-23"),
    dev("dev-28", in_percent(S, "u-5", 15), "user bucket %d" % bucket(S, "u-5"), user_id="u-5"),
    dev("dev-28", in_percent(S, "dev-28", 15), "no user: device bucket %d" % bucket(S, "dev-28")),
    dev("dev-7", in_percent(S, "dev-7", 15), "no user: device bucket %d" % bucket(S, "dev-7")),
    dev("dev-28", in_percent(S, "dev-28", 15), "empty user is no user", user_id=""),
], also=["percent(15%, USER)", "percent(15.000, user)"])
case("percent with thousandths", "percent(12.345)", {"percent": 12.345}, [
    dev(d, in_percent(S, d, 12.345), "bucket %d" % bucket(S, d)) for d in ["dev-52", "dev-48", "dev-44", "dev-7", "dev-0"]
])
case("percent under another salt", "platform = android and percent(10)",
     {"and": [cond("platform", "=", "android"), {"percent": 10}]}, [
    dev(d, in_percent(R, d, 10), "bucket %d" % bucket(R, d), platform="android") for d in ["dev-0", "dev-5", "dev-8", "dev-28"]
], salt=R)
case("zero percent", "percent(0)", {"percent": 0}, [dev(d, False) for d in ["dev-0", "dev-28", ""]])
case("a hundred percent", "percent(100)", {"percent": 100}, [dev(d, True) for d in ["dev-0", "dev-28", ""]])
case("segments", "segment(whales) and not platform = web",
     {"and": [{"segment": "whales"}, {"not": cond("platform", "=", "web")}]}, [
    dev("dev-1", True, platform="android"),
    dev("dev-1", False, platform="web"),
    dev("dev-2", False, platform="android"),
])
case("precedence: not, and, or", "(not platform = ios and channel = a) or channel = b",
     {"or": [{"and": [{"not": cond("platform", "=", "ios")}, cond("channel", "=", "a")]}, cond("channel", "=", "b")]}, [
    dev("d", True, platform="android", channel="a"),
    dev("d", False, platform="ios", channel="a"),
    dev("d", True, platform="ios", channel="b"),
    dev("d", True, channel="a"),
], also=["not platform = ios and channel = a or channel = b"])
case("nested groups", "not (platform = ios or (channel = play and network = wifi))",
     {"not": {"or": [cond("platform", "=", "ios"), {"and": [cond("channel", "=", "play"), cond("network", "=", "wifi")]}]}}, [
    dev("d", False, platform="ios"),
    dev("d", False, platform="android", channel="play", network="wifi"),
    dev("d", True, platform="android", channel="play", network="4g"),
])
case("same-kind groups keep their parentheses", "platform = ios and (channel = a and channel = b)",
     {"and": [cond("platform", "=", "ios"), {"and": [cond("channel", "=", "a"), cond("channel", "=", "b")]}]}, [
    dev("d", False, platform="ios", channel="a"),
])
case("keywords as values are quoted", 'channel in ("and", "or")', cond("channel", "in", ["and", "or"]), [
    dev("d", True, channel="AND"),
    dev("d", False, channel="not"),
], also=["channel in ('and','or',)"])
case("escapes", 'model = "quote\\" and \\\\ backslash"', cond("model", "=", 'quote" and \\ backslash'), [
    dev("d", True, model='QUOTE" and \\ backslash'),
])
case("double negation", "not not segment(whales)", {"not": {"not": {"segment": "whales"}}}, [
    dev("dev-1", True),
    dev("dev-9", False),
])

rule_sets = [
    {
        "name": "first match wins",
        "salt": S,
        "set": {
            "rules": [
                {"when": cond("user", "in_list", "beta-testers"), "value": "purple"},
                {"when": {"and": [cond("platform", "=", "ios"), cond("app_version", ">=", "2")]}, "value": "blue"},
                {"when": {"percent": 10}, "value": "green"},
            ],
            "default": "grey",
        },
        "devices": [
            {"attributes": {"device_id": "dev-28", "user_id": "u-1", "platform": "ios", "app_version": "2.1"}, "value": "purple"},
            {"attributes": {"device_id": "dev-7", "platform": "ios", "app_version": "2.1"}, "value": "blue"},
            {"attributes": {"device_id": "dev-28", "platform": "android"}, "value": "green" if in_percent(S, "dev-28", 10) else "grey"},
            {"attributes": {"device_id": "dev-7", "platform": "android"}, "value": "green" if in_percent(S, "dev-7", 10) else "grey"},
            {"attributes": {"device_id": "dev-32", "platform": "ios", "app_version": "1.9"}, "value": "green" if in_percent(S, "dev-32", 10) else "grey"},
        ],
    },
    {
        "name": "structured values and no rules",
        "salt": S,
        "set": {"rules": [], "default": {"enabled": False, "limit": 5}},
        "devices": [{"attributes": {"device_id": "dev-1"}, "value": {"enabled": False, "limit": 5}}],
    },
]

errors = [
    {"text": "app_version => 2", "code": "rule_syntax", "column": 13},
    {"text": "platform = ios && channel = play", "code": "rule_syntax", "column": 16},
    {"text": "platform ios", "code": "rule_syntax", "column": 10},
    {"text": "model = Pixel 8", "code": "rule_syntax", "column": 15},
    {"text": "(platform = ios", "code": "rule_syntax", "column": 16},
    {"text": "", "code": "rule_syntax", "column": 1},
    {"text": "user_id = u-1", "code": "rule_unknown_field", "column": 1},
    {"text": "platform < ios", "code": "rule_invalid_operator", "column": 10},
    {"text": "channel in list:beta", "code": "rule_invalid_operator", "column": 9},
    {"text": "platform = andriod", "code": "rule_invalid_value", "column": 12},
    {"text": "channel = \"\"", "code": "rule_invalid_value", "column": 11},
    {"text": "app_version >= 2.x", "code": "rule_invalid_version", "column": 16},
    {"text": "app_version in (\"1..2\")", "code": "rule_invalid_version", "column": 17},
    {"text": "percent(100.5)", "code": "rule_invalid_percentage", "column": 9},
    {"text": "percent(0.0001)", "code": "rule_invalid_percentage", "column": 9},
    {"text": "platform in ()", "code": "rule_empty_list", "column": 13},
    {"text": "not " * 11 + "platform = ios", "code": "rule_too_deep", "column": 1},
    {"text": " or ".join(["platform = ios"] * 65), "code": "rule_too_many_conditions", "column": 64 * 18 + 1},
    {"json": {"field": "platform", "op": "=", "value": "ios", "extra": True}, "code": "rule_unknown_field", "path": "/extra"},
    {"json": {"field": "plat", "op": "=", "value": "ios"}, "code": "rule_unknown_field", "path": "/field"},
    {"json": {"field": "platform", "op": "like", "value": "ios"}, "code": "rule_invalid_operator", "path": "/op"},
    {"json": {"or": [{"segment": "a"}, cond("app_version", "in", ["1.x", "2..0"])]}, "code": "rule_invalid_version", "path": "/or/1/values/1"},
    {"json": {"percent": 1.2345}, "code": "rule_invalid_percentage", "path": "/percent"},
    {"json": {"percent": 101}, "code": "rule_invalid_percentage", "path": "/percent"},
    {"json": cond("channel", "in", []), "code": "rule_empty_list", "path": "/values"},
    {"json": {"and": [{"segment": "a"}]}, "code": "rule_group_too_small", "path": "/"},
    {"json": {"field": "app_version", "op": ">=", "value": 2.1}, "code": "rule_invalid_json", "path": "/value"},
]

print(json.dumps({
    "description": "Golden vectors for target rules (DESIGN.md section 1; semantics in crates/atoll-core/src/rules/mod.rs). "
                   "Each case: a rule's canonical text form, other spellings of it, its JSON form, a salt, and devices with the expected outcome. "
                   "Percentages were decided with Python's mmh3, independently of the Rust code. Generated by contracts/gen_rules.py; checked by atoll-core tests. "
                   "Never edit a vector: add new ones.",
    "version": 1,
    "lists": {"beta-testers": ["u-1", "u-2", "u-3"], "blocked": ["u-3"], "qa-devices": ["qa-1", "qa-2"]},
    "segments": {"whales": ["dev-1"]},
    "cases": cases,
    "rule_sets": rule_sets,
    "errors": errors,
}, ensure_ascii=False, indent=2))
