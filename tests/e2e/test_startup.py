"""Start-up checks come first and speak plainly: a bad flag, address or TLS
file is refused before the data dir is touched; the "listening" lines appear
only once every listener is bound; a data dir that cannot be used says why."""
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from conftest import BIN, new_server

RUN_TIMEOUT = 30


def serve(data_dir, *args):
    env = dict(os.environ, SENSORSPACE_ADMIN_PASSWORD="correct-horse-battery")
    return subprocess.run([BIN, "serve", "--data-dir", data_dir, "--listen-mqtt", "off",
                           "--listen-mqtts", "off", "--listen-tcp", "off", "--listen-udp", "off",
                           "--listen-https", "127.0.0.1:0", "--listen-http", "127.0.0.1:0"]
                          + list(args), capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env)


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="ss-startup-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("flag,value", [
    ("--listen-http", "127.0.0.1:99999"),
    ("--listen-https", "no-such-host:8443"),
    ("--listen-tcp", "127.0.0.1"),
    ("--listen-udp", "1.2.3.4.5:7070"),
    ("--listen-mqtt", "localhost:-1"),
])
def test_bad_address_refused_before_the_data_dir_is_touched(tmp, flag, value):
    data = os.path.join(tmp, "data")
    out = serve(data, flag, value)
    assert out.returncode == 2, out.stderr
    assert "listen-" + flag.split("-")[-1] in out.stderr and value in out.stderr
    assert not os.path.exists(data), "the data dir was created for a server that cannot start"
    assert "listening" not in out.stdout


def test_missing_tls_file_refused_before_the_data_dir_is_touched(tmp):
    data = os.path.join(tmp, "data")
    missing = os.path.join(tmp, "nope.pem")
    out = serve(data, "--tls-cert", missing, "--tls-key", missing)
    assert out.returncode == 2 and missing in out.stderr, out.stderr
    assert not os.path.exists(data)


def test_no_listening_line_unless_every_listener_is_bound(tmp):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        out = serve(os.path.join(tmp, "data"), "--listen-tcp", "127.0.0.1:%d" % port)
    finally:
        taken.close()
    assert out.returncode == 1
    assert "cannot listen tcp" in out.stderr
    assert "listening" not in out.stdout, out.stdout


def test_data_dir_that_is_a_file(tmp):
    path = os.path.join(tmp, "file")
    open(path, "w").close()
    out = serve(path)
    assert out.returncode == 1
    assert "data dir %s is not a directory" % path in out.stderr, out.stderr


def test_data_dir_whose_parent_is_missing(tmp):
    path = os.path.join(tmp, "missing", "data")
    out = serve(path)
    assert out.returncode == 1
    assert "parent directory does not exist" in out.stderr, out.stderr


def test_data_dir_not_writable(tmp):
    # Root ignores permission bits, so a read-only mount stands in for them.
    ro = os.path.join(tmp, "ro")
    os.mkdir(ro)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only file system here")
    try:
        out = serve(ro)
    finally:
        subprocess.run(["umount", ro])
    assert out.returncode == 1
    assert "data dir %s is not writable" % ro in out.stderr, out.stderr


def test_no_arguments_prints_usage_and_exits_2():
    out = subprocess.run([BIN], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert out.returncode == 2
    assert "usage: sensorspace" in out.stderr


def test_comment_after_a_value_in_the_config_file(tmp):
    conf = os.path.join(tmp, "sensorspace.conf")
    with open(conf, "w") as f:
        f.write("# the whole line\n"
                "log-level = warn   # only what needs a look\n"
                "durability = normal\t# fast\n")
    srv = new_server(["--config", conf])
    try:
        srv.start()
        # The flags the fixture adds win over the file; the file's own keys
        # were read without their comments, or the start would have failed.
        assert srv.proc.poll() is None
    finally:
        assert srv.stop() == 0
        shutil.rmtree(srv.data_dir, ignore_errors=True)
    with open(conf, "w") as f:
        f.write("durability = fast # not a value\n")
    out = serve(os.path.join(tmp, "data"), "--config", conf)
    assert out.returncode == 2 and "durability" in out.stderr
