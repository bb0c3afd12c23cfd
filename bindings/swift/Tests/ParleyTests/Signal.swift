import Foundation

/// Audio analysis for the call test.
enum Signal {
    /// The power of `freq` in `x` (Goertzel).
    static func goertzel(_ x: UnsafeBufferPointer<Double>, freq: Double, rate: Double) -> Double {
        let c = 2 * cos(2 * Double.pi * freq / rate)
        var s1 = 0.0, s2 = 0.0
        for v in x {
            let s = v + c * s1 - s2
            s2 = s1
            s1 = s
        }
        return s1 * s1 + s2 * s2 - c * s1 * s2
    }

    struct Analysis {
        var dominantHz: Double
        var rms: Double
        /// The share of the signal's energy in the dominant tone (1: a pure sine).
        var purity: Double
    }

    /// Finds the dominant frequency between `low` and `high` Hz: a coarse scan every 10 Hz
    /// over 50 ms blocks (a 20 Hz wide main lobe, so no tone falls between the steps), then
    /// a 0.5 Hz scan of ±15 Hz around the coarse peak over the whole signal.
    static func analyse(_ pcm: [Int16], rate: Double, low: Double = 50, high: Double = 4000) -> Analysis {
        let x = pcm.map { Double($0) }
        let energy = x.reduce(0) { $0 + $1 * $1 }
        let rms = x.isEmpty ? 0 : (energy / Double(x.count)).squareRoot()
        return x.withUnsafeBufferPointer { all -> Analysis in
            let block = Int(rate / 20)
            var best = (f: low, p: -1.0)
            var f = low
            while f <= high {
                var p = 0.0
                var start = 0
                while start + block <= all.count {
                    p += goertzel(UnsafeBufferPointer(rebasing: all[start..<start + block]), freq: f, rate: rate)
                    start += block
                }
                if p > best.p { best = (f, p) }
                f += 10
            }
            var fine = (f: best.f, p: -1.0)
            f = best.f - 15
            while f <= best.f + 15 {
                let p = goertzel(all, freq: f, rate: rate)
                if p > fine.p { fine = (f, p) }
                f += 0.5
            }
            let n = Double(all.count)
            let purity = energy > 0 ? fine.p / (n / 2 * energy) : 0
            return Analysis(dominantHz: fine.f, rms: rms, purity: purity)
        }
    }

    /// `count` float samples of a sine starting at sample `offset`.
    static func sineFloat(freq: Double, amplitude: Double, rate: Double, offset: Int, count: Int) -> [Float] {
        (0..<count).map { i in
            Float(amplitude * sin(2 * Double.pi * freq * Double(offset + i) / rate))
        }
    }

    /// The RMS level of `x` in dB relative to `fullScale`.
    static func levelDB(_ x: [Double], fullScale: Double) -> Double {
        guard !x.isEmpty else { return -.infinity }
        let rms = (x.reduce(0) { $0 + $1 * $1 } / Double(x.count)).squareRoot()
        return 20 * log10(rms / fullScale)
    }

    /// `count` samples of a sine starting at sample `offset`.
    static func sine(freq: Double, amplitude: Double, rate: Double, offset: Int, count: Int) -> [Int16] {
        (0..<count).map { i in
            Int16(amplitude * sin(2 * Double.pi * freq * Double(offset + i) / rate))
        }
    }
}
