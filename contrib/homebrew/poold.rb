# Homebrew formula for poold, kept in step with contrib/launchd/.
#
# poold has no public release yet, so the formula builds the checkout it
# sits in (HEAD only):
#
#   brew install --HEAD --formula ./contrib/homebrew/poold.rb
#   brew services start poold
#
# When releases exist, add `url` (the tarball), `sha256`, a `homepage`
# and `license` above `head`: `brew audit --strict --new poold` asks for
# all four, and until then reports them missing.
class Poold < Formula
  desc "Memory-aware pool of llama.cpp llama-server processes"
  head "file://#{File.expand_path("../..", __dir__)}", using: :git, branch: "HEAD"

  depends_on "pkg-config" => :build
  depends_on "curl"
  depends_on "jansson"
  depends_on "libev"
  depends_on "llhttp"

  def install
    system "make", "install", "PREFIX=#{prefix}"
    (etc/"poold").mkpath
    (var/"poold").mkpath
    (var/"run/poold").mkpath
  end

  def caveats
    <<~EOS
      Write #{etc}/poold/poold.json (see `man poold.json`), with at least
      "models_dir", "command" and a "socket" such as
      "#{var}/run/poold/poold.sock" (export the same path as POOLD_SOCKET
      for the clients): a service has no XDG_RUNTIME_DIR, and the default
      under /tmp differs per user.  On Apple Silicon `poold --budget`
      shows the RAM and the GPU (Metal working set) budgets and which binds.
    EOS
  end

  # As contrib/launchd/org.poold.poold.plist: in the foreground, restarted
  # unless it exits cleanly, one log.  (The service DSL has no ExitTimeOut:
  # launchd's default, 20 s, is more than stop_timeout's 10 s.)
  service do
    run [opt_sbin/"poold", "-f", etc/"poold/poold.json"]
    keep_alive successful_exit: false
    log_path var/"log/poold.log"
    error_log_path var/"log/poold.log"
    process_type :standard
  end

  test do
    (testpath/"models").mkpath
    (testpath/"poold.json").write <<~EOS
      { "models_dir": "#{testpath}/models", "socket": "#{testpath}/poold.sock",
        "memory_limit": "1G", "reserved": "0", "per_model": "100M",
        "command": ["/usr/bin/true", "{path}", "{port}"] }
    EOS
    output = shell_output("#{sbin}/poold --budget -f #{testpath}/poold.json")
    assert_match "available", output
    assert_match "gpu budget", output
    assert_match "usage: poolc", shell_output("#{bin}/poolc --help")
  end
end
