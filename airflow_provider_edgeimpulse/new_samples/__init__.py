"""
"New samples landed in a project": the one probe and the watermark store behind the sensor and the triggers.

A watermark is the highest sample id already accounted for. Edge Impulse hands out sample ids from an
increasing sequence and never reuses one, so "newer than the watermark" survives deletions of old samples
(which a bare count would not: delete 5 and upload 5, and the count stands still).
"""
