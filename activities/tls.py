"""One TLS context for every HTTP client the activities make. Building one loads the whole CA bundle (about
10 ms of CPU), and the activities make a client per call: under a burst of leads that was a good share of the
worker's interpreter."""

import ssl

import certifi

TLS = ssl.create_default_context(cafile=certifi.where())
