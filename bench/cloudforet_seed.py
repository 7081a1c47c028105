"""Seeds a skymeter server for bench/cloudforet_collect.sh: N AWS instances, each with the
ten metrics the Cloudforet plugin reads (avg and max series), one point an hour for 24 hours.

    cloudforet_seed.py BASE_URL INGEST_TOKEN N
"""

import datetime
import json
import sys
import urllib.request
import uuid

METRICS = [
    ("cpu.utilization", "percent"),
    ("memory.usage", "percent"),
    ("disk.read_iops", "count/s"),
    ("disk.write_iops", "count/s"),
    ("disk.read_throughput", "bytes/s"),
    ("disk.write_throughput", "bytes/s"),
    ("network.received_throughput", "bytes/s"),
    ("network.sent_throughput", "bytes/s"),
    ("network.received_pps", "count/s"),
    ("network.sent_pps", "count/s"),
]


def main():
    base, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    now = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
    per_batch = 100
    for start in range(0, n, per_batch):
        resources, points = [], []
        for i in range(start, min(n, start + per_batch)):
            rid = f"i-{i:017x}"
            ref = {"provider": "aws", "account": "123456789012", "region": "eu-west-1", "id": rid}
            resources.append(dict(ref, kind="compute.instance", native_type="AWS::EC2::Instance",
                                  name=f"web-{i}", tags={"team": "bench"},
                                  attributes={"instance_type": "m5.large", "state": "running"},
                                  observed_at=now.isoformat()))
            for m, (metric, unit) in enumerate(METRICS):
                for h in range(24):
                    ts = (now - datetime.timedelta(hours=24 - h)).isoformat()
                    value = float((i * 7 + m * 13 + h * 3) % 97)
                    for stat, v in (("avg", value), ("max", value + 3.0)):
                        points.append({"metric": metric, "unit": unit, "stat": stat, "period_s": 3600,
                                       "ts": ts, "value": v, "resource": ref})
        batch = {"schema": 1, "batch_id": str(uuid.uuid4()), "agent_id": "bench", "task": "seed",
                 "collected_at": now.isoformat(), "resources": resources, "points": points}
        req = urllib.request.Request(f"{base}/api/v1/ingest", data=json.dumps(batch).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 200, r.read()


if __name__ == "__main__":
    main()
