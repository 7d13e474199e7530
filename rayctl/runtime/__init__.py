"""What runs on nodes and what bootstrap needs to get it there: the node records, runners
(local, SSH), bootstrap, the runtime install, jobs, detached processes, the paths kept on
nodes, and the Ray adapter (the only module that imports Ray). Imports no provider."""
