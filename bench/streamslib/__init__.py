"""The parts of bench/streams.py, one job per module.

cli          the command line
workload     the question, system prompt and simulator model every phase uses
tenant       the bench's group, users, threads and sessions (Django, in the bench process)
servers      the simulator and daphne in their own processes, and py-spy on daphne
accounting   CPU, RSS and machine load read from /proc, per phase
clients      the streaming clients (direct SSE and WebSocket) and their timings
rawsocket    a WebSocket whose reading can be paused at the TCP level
slow_client  the client that stops reading, then resumes
idle         the idle sockets: opened in batches before the streams, held silent by a worker
checks       what the clients received against what the database stored
summary      one phase's figures: quantiles, concurrency
phases       baseline, floor, platform and slow-client phases
report       the printed figures
"""
