//! Match keys for names: the single place the reconciler gets its name keys from.
//!
//! The keys belong to the normaliser ([`crate::normalise::kana_key`] and
//! [`crate::normalise::kanji_key`], with the variant table of
//! `schemas/codes/kanji_variants.toml`); every caller in `reconcile` goes through
//! [`kana`] and [`kanji`].

/// The kana match key of a name.
pub(crate) fn kana(name: &str) -> String {
    crate::normalise::kana_key(name)
}

/// The kanji match key of a name.
pub(crate) fn kanji(name: &str) -> String {
    crate::normalise::kanji_key(name, crate::normalise::Tables::embedded())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kana_key_folds() {
        assert_eq!(kana("シナガワ\u{3000}タロウ"), "シナガワタロウ");
        assert_eq!(kana("しながわ たろう"), "シナガワタロウ");
        assert_eq!(kana("キョウコ"), "キヨウコ");
        assert_eq!(kana("ヴァイオリン"), "バイオリン");
        assert_eq!(kana("ヴ"), "ブ");
        assert_eq!(kana("ユーコ"), "ユコ");
        assert_eq!(kana("ミチヅキ"), "ミチズキ");
        assert_eq!(kana("チヂミ"), "チジミ");
        assert_eq!(kana("カヲル"), "カオル");
    }

    #[test]
    fn kanji_key_folds() {
        assert_eq!(kanji("髙橋\u{3000}一郎"), "高橋一郎");
        assert_eq!(kanji("山﨑"), "山崎");
        assert_eq!(kanji("渡邊 渡邉"), "渡辺渡辺");
        assert_eq!(kanji("齋藤 齊藤 斎藤"), "斉藤斉藤斉藤");
        assert_eq!(kanji("澤 濱 嶋"), "沢浜島");
    }
}
