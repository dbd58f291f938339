"""The log formats `hls` reads by default (kept apart: the CLI needs them
without loading the importer)."""

__all__ = ["DEFAULT_SEGMENT_PATTERN", "NGINX_COMBINED", "NGINX_TIME"]

# nginx `log_format combined`:
# $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
# "$http_referer" "$http_user_agent"
NGINX_COMBINED = (
    r'^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+)[^"]*" '
    r'(?P<status>\d{3}) \S+ "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<ua>(?:[^"\\]|\\.)*)"'
)
NGINX_TIME = "%d/%b/%Y:%H:%M:%S %z"
# A media segment; the stream is the folder it lives in: /live/vtv1/seg_00123.ts → live/vtv1.
DEFAULT_SEGMENT_PATTERN = r"^/(?P<stream>.+)/[^/]+\.(?:ts|aac|m4s|mp4|m4a|mp3|cmfv|cmfa)$"
