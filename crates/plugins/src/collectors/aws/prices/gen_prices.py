#!/usr/bin/env python3
"""Builds the shipped AWS price table (prices.json) from public sources.

Every figure in the output comes from a source named in the table's `source` text; a price
no source gives for a region is left out (the estimator then reports it missing) rather than
guessed. The fetched files are read from the paths given; nothing is downloaded here.

    python3 gen_prices.py \\
        --base prices.json \\
        --karpenter zz_generated.pricing_aws.go --karpenter-commit SHA \\
        --moto-types instance_types.json --moto-regions DIR --moto-commit SHA \\
        --output prices.json

- `--base`: the table this one replaces; its entries that no source below replaces are kept
  (with their part of its `source` text).
- `--karpenter`: aws/karpenter-provider-aws pkg/providers/pricing/zz_generated.pricing_aws.go,
  EC2 Linux on-demand prices per instance type (as generated from the AWS Price List API; the
  file says for which regions and when).
- `--moto-types`: getmoto/moto moto/ec2/resources/instance_types.json (DescribeInstanceTypes
  answers): the vCPUs and memory of each type.
- `--moto-regions`: a directory whose file names are the commercial regions
  (moto/ec2/resources/instance_type_offerings/region/*.json).
"""

import argparse
import json
import os
import re
import sys

# Figures published by AWS for one region or for every commercial region, with where they are
# published. (region or "*", path in the table, value, source key)
FIGURES = [
    ("us-east-1", ("ebs", "snapshot_gb_month"), 0.05, "ebs-snapshots"),
    ("us-east-1", ("ebs", "snapshot_archive_gb_month"), 0.0125, "ebs-snapshots"),
    ("*", ("vpc", "public_ipv4_hour"), 0.005, "public-ipv4"),
    ("us-east-1", ("vpc", "nat_gateway_hour"), 0.045, "nat-use1"),
    ("us-east-1", ("vpc", "nat_gateway_gb"), 0.045, "nat-use1"),
    ("us-east-1", ("elb", "alb_hour"), 0.0225, "elb-use1"),
    ("us-east-1", ("elb", "alb_lcu_hour"), 0.008, "elb-use1"),
    ("us-east-1", ("elb", "nlb_hour"), 0.0225, "elb-use1"),
    ("us-east-1", ("elb", "nlb_lcu_hour"), 0.006, "elb-use1"),
]

SOURCES = {
    "ebs-snapshots": "us-east-1 EBS snapshot storage, standard and archive tier: Amazon EBS User "
    "Guide, 'Pricing and billing for archiving Amazon EBS snapshots' "
    "(docs.aws.amazon.com/ebs/latest/userguide/snapshot-archive-pricing.html, read 2026-12-07).",
    "public-ipv4": "Public IPv4 address per hour, every commercial region: AWS announcement of "
    "2023-07-28 ('New - AWS Public IPv4 Address Charge + Public IP Insights': USD 0.005 per IP "
    "per hour for all public IPv4 addresses from 2024-02-01, in all AWS regions, as reported by "
    "techpartner.news and haufe-akademie.de).",
    "nat-use1": "us-east-1 NAT gateway hour and GB processed: aws.amazon.com/vpc/pricing as "
    "quoted by cloudburn.io 'AWS NAT Gateway Pricing' (2026-02-24) and basavytix.com 'AWS NAT "
    "Gateway pricing' (us-east-1 rates).",
    "elb-use1": "us-east-1 ALB and NLB hour and (N)LCU-hour: aws.amazon.com/elasticloadbalancing/"
    "pricing as quoted by awsnegotiations.com 'Elastic Load Balancer Cost' (May 2026; US East); "
    "ALB/NLB hour also grafana/cloudcost-exporter pkg/aws/elb/pricing_map.go.",
}


def karpenter_prices(path):
    """{region: {instance type: USD per hour}} and the 'generated at' line."""
    text = open(path, encoding="utf-8").read()
    generated = re.search(r"// generated at (\S+) for (.+)", text)
    out = {}
    region = None
    for line in text.splitlines():
        m = re.match(r'\s*"([a-z]{2}(?:-[a-z]+)+-\d)": \{', line)
        if m:
            region = m.group(1)
            out[region] = {}
            continue
        if region is None:
            continue
        for ty, usd in re.findall(r'"([a-z0-9-]+\.[a-z0-9-]+)": ([0-9.]+)', line):
            v = float(usd)
            if v > 0:
                out[region][ty] = v
    return out, (generated.group(1) if generated else "unknown")


def moto_specs(path):
    data = json.load(open(path, encoding="utf-8"))
    out = {}
    for ty, d in data.items():
        vcpus = d.get("VCpuInfo", {}).get("DefaultVCpus")
        mib = d.get("MemoryInfo", {}).get("SizeInMiB")
        if vcpus and mib:
            out[ty] = {"vcpus": int(vcpus), "memory_mib": int(mib)}
    return out


def dumps(v, path=()):
    """Sorted JSON, one line per region's section entry and per instance spec."""
    inline = len(path) >= 4 or (len(path) >= 2 and path[0] == "ec2_specs")
    if isinstance(v, dict) and v and not inline:
        pad = " " * (len(path) + 1)
        items = [f"{pad}{json.dumps(k)}: {dumps(v[k], path + (k,))}" for k in sorted(v)]
        return "{\n" + ",\n".join(items) + "\n" + " " * len(path) + "}"
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--karpenter", required=True)
    ap.add_argument("--karpenter-commit", required=True)
    ap.add_argument("--moto-types", required=True)
    ap.add_argument("--moto-regions", required=True)
    ap.add_argument("--moto-commit", required=True)
    ap.add_argument("--output", required=True)
    a = ap.parse_args()

    base = json.load(open(a.base, encoding="utf-8"))
    regions = sorted(
        f[: -len(".json")] for f in os.listdir(a.moto_regions) if f.endswith(".json")
    )
    if "us-east-1" not in regions:
        sys.exit("--moto-regions has no us-east-1.json: not the region directory")
    ec2, generated = karpenter_prices(a.karpenter)
    specs = moto_specs(a.moto_types)

    table = {
        "currency": "USD",
        "date": generated[:10],
        "regions": base.get("regions", {}),
    }
    for region, prices in ec2.items():
        r = table["regions"].setdefault(region, {})
        r["ec2"] = {ty: {"Linux": usd} for ty, usd in prices.items()}
    used = set()
    for region, path, value, src in FIGURES:
        for reg in regions if region == "*" else [region]:
            section = table["regions"].setdefault(reg, {}).setdefault(path[0], {})
            section[path[1]] = value
        used.add(src)
    priced = {ty for r in table["regions"].values() for ty in r.get("ec2", {})}
    table["ec2_specs"] = {ty: specs[ty] for ty in sorted(priced) if ty in specs}
    missing_specs = sorted(priced - set(specs))

    kept = base["source"].split(" us-east-1 EBS storage per GB-month", 1)
    kept = ("us-east-1 EBS storage per GB-month" + kept[1]) if len(kept) == 2 else ""
    source = [
        "Shipped with skymeter; run `skymeter prices aws update` for current prices.",
        f"EC2 Linux on-demand (shared tenancy), {', '.join(sorted(ec2))}: AWS Price List API "
        f"as extracted in aws/karpenter-provider-aws pkg/providers/pricing/"
        f"zz_generated.pricing_aws.go (commit {a.karpenter_commit[:12]}, generated {generated}).",
        f"EC2 vCPUs and memory (ec2_specs): getmoto/moto moto/ec2/resources/instance_types.json "
        f"(DescribeInstanceTypes answers, commit {a.moto_commit[:12]}); commercial regions: the "
        f"same commit's moto/ec2/resources/instance_type_offerings/region/.",
    ]
    source += [SOURCES[k] for k in SOURCES if k in used]
    if kept:
        source.append(kept)
    table["source"] = " ".join(source)

    with open(a.output, "w", encoding="utf-8") as f:
        f.write(dumps(table) + "\n")
    print(
        f"{len(table['regions'])} regions, {sum(len(p) for p in ec2.values())} EC2 prices, "
        f"{len(table['ec2_specs'])} specs; types without a spec: {', '.join(missing_specs) or 'none'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
